"""vigil's real setting names, for the deployment files to be checked against.

Every ``VIGIL_*`` variable a Compose file or a manifest sets must be a field of one of
vigil's settings classes (a misspelt one is silently ignored by pydantic-settings), and
every ``vigil.yaml`` they ship must load through those classes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vigil.capture.settings import CaptureSettings
from vigil.monitor.settings import MonitorSettings
from vigil.serving.config import ServingSettings
from vigil.settings import Settings, VigilSettings

CLASSES: tuple[type[VigilSettings], ...] = (
    Settings,
    ServingSettings,
    MonitorSettings,
    CaptureSettings,
)

PENDING: dict[str, str] = {}
"""Settings the deployment files set that another branch of issue 15 adds. Each must not be
a field yet: once it is, :func:`check_names` says to drop it from here."""

OTHER_VARIABLES = {
    "VIGIL_CONFIG": "the vigil.yaml to read (vigil.settings)",
    "AWS_ACCESS_KEY_ID": "the S3 store's credentials, read by s3fs/botocore",
    "AWS_SECRET_ACCESS_KEY": "the S3 store's credentials, read by s3fs/botocore",
    "AWS_DEFAULT_REGION": "the S3 store's region, read by s3fs/botocore",
}


def setting_variables() -> set[str]:
    """Every ``VIGIL_*`` variable vigil's settings classes read."""
    names = set()
    for cls in CLASSES:
        prefix = str(cls.model_config.get("env_prefix") or "")
        names.update(f"{prefix}{field}".upper() for field in cls.model_fields)
    return names


def check_names(variables: set[str], where: str) -> None:
    """Fail on a variable vigil does not read (or a :data:`PENDING` one it now does)."""
    real = setting_variables()
    for name in sorted(variables):
        if name in PENDING:
            assert name not in real, f"{name} is a setting now: drop it from PENDING"
            continue
        assert name in real or name in OTHER_VARIABLES, f"{where}: {name} is no vigil setting"


def load_config_file(path: Path) -> None:
    """Load every settings class from ``path`` as ``VIGIL_CONFIG``, in a fresh interpreter
    (the settings read the environment): fails on an unknown or invalid setting."""
    code = (
        "from vigil.settings import build_settings\n"
        "from tests.deploy.vigil_settings import CLASSES\n"
        "for cls in CLASSES:\n"
        "    build_settings(cls)\n"
    )
    keep = ("PATH", "PYTHONPATH", "LANG")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["VIGIL_CONFIG"] = str(path)
    env["VIGIL_HOME"] = "/nonexistent/vigil-home"  # settings only name it, never create it
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(root)) if p)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root
    )
    assert done.returncode == 0, f"{path}: {done.stderr}"
