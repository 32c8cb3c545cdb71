"""Where a model version came from, gathered at registration, and the trust it was given."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.bundle.trust import TrustPolicy
from vigil.version import VERSION

if TYPE_CHECKING:
    from vigil.registry.entities import ModelVersion


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit checked out in the git repository around ``cwd``, if any."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(
            [git, "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) in (40, 64) else None


def collect_lineage(
    given: dict[str, Any] | None, manifest: dict[str, Any], *, cwd: Path | None = None
) -> dict[str, Any]:
    """Lineage of a new version: facts vigil finds itself, then the bundle's ``lineage``
    entry, then what the caller passed (each later source wins on a shared key).

    Facts found here: ``host``, ``vigil_version`` and ``git_commit`` (when registering
    from inside a git work tree).
    """
    lineage: dict[str, Any] = {
        "host": socket.gethostname(),
        "vigil_version": VERSION,
        "git_commit": git_commit(cwd),
    }
    from_bundle = manifest.get("lineage")
    if isinstance(from_bundle, dict):
        lineage.update(from_bundle)
    lineage.update(given or {})
    return lineage


def version_trust(mv: ModelVersion, trust: TrustPolicy | None = None) -> TrustPolicy:
    """What loading ``mv`` may unpickle or import: the trust recorded in its lineage when it
    was registered, widened by ``trust``."""
    recorded = (mv.lineage or {}).get("trust") or {}
    given = trust or TrustPolicy()
    return TrustPolicy(
        trust_pickle=bool(recorded.get("pickle")) or given.trust_pickle,
        trusted_types=tuple(sorted(set(recorded.get("types", ())) | set(given.trusted_types))),
        max_unpacked_bytes=given.max_unpacked_bytes,
    )
