"""The container image (``Dockerfile``), checked without a container engine.

The Dockerfile is parsed for what an orchestrator relies on (a non-root numeric user, a
health check on ``/readyz``, an exec-form entrypoint under tini, everything written under
``VIGIL_HOME``), and its entrypoint and command run here as the image runs them: as that
unprivileged user, with the image's environment, a home directory it cannot write and
``VIGIL_HOME`` the only place it can; SIGTERM to the first process (tini, PID 1 in the
image) must reach vigil and end the whole process tree with exit status 0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests._waiting import wait_for
from tests.deploy.dockerfile import (
    INSTRUCTIONS,
    arg_default,
    command,
    entrypoint,
    final,
    image_env,
)

from vigil.app import Vigil
from vigil.auth.keys import KeyStore
from vigil.serving.server import free_port
from vigil.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]

DRAINS = importlib.util.find_spec("vigil.serving.drain") is not None


def sigterm_status(workers: int) -> int:
    """The exit status of the image's first process after SIGTERM, which tini passes on
    from vigil: 0 once vigil drains on SIGTERM (:mod:`vigil.serving.drain`). Before, one
    worker (uvicorn's server) ends its graceful shutdown by raising SIGTERM again, which
    tini reports as 128 + 15; several workers' supervisor exits 0."""
    return 0 if DRAINS or workers > 1 else 128 + signal.SIGTERM


# -- the Dockerfile itself ------------------------------------------------------------------


def test_the_image_is_built_in_two_stages_with_the_extras_of_a_build_argument():
    stages = [i.args.split()[0] for i in INSTRUCTIONS if i.name == "FROM"]
    assert len(stages) == 2 and stages[0] == stages[1] == "${PYTHON_IMAGE}"
    assert arg_default("PYTHON_IMAGE").startswith("python:3.11-slim")
    (install,) = [i for i in INSTRUCTIONS if i.name == "RUN" and "pip install" in i.args]
    assert install.stage == 0 and '".[${EXTRAS}]"' in install.args
    assert "-c constraints.txt" in install.args  # the versions CI tested
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    default = arg_default("EXTRAS").split(",")
    assert "serve" in default and set(default) <= extras
    # Only the virtualenv is carried into the final stage: no compiler, no source tree.
    copies = [i.args for i in final("COPY")]
    assert copies == ["--from=build /opt/vigil /opt/vigil"]


def test_the_image_runs_as_a_numeric_non_root_user():
    (user,) = final("USER")
    uid = arg_default("UID")
    assert user.args == "${UID}:${UID}" and uid.isdigit() and int(uid) >= 1000


def test_everything_written_goes_to_vigil_home_a_volume():
    env = image_env()
    (volume,) = final("VOLUME")
    assert volume.exec_form() == [env["VIGIL_HOME"]]
    (workdir,) = final("WORKDIR")
    assert workdir.args == env["VIGIL_HOME"]
    # No bytecode written next to the code at run time (the root may be read-only): it is
    # compiled in the build instead.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert any("compileall" in i.args for i in INSTRUCTIONS if i.name == "RUN")


def test_the_entrypoint_is_exec_form_under_tini_and_serves_off_loopback():
    # tini as PID 1 forwards signals and reaps; `vigil serve` on 0.0.0.0 forces API keys.
    assert entrypoint() == ["tini", "--", "vigil", "serve", "--host", "0.0.0.0"]
    assert final("STOPSIGNAL")[0].args == "SIGTERM"
    assert command()[:2] == ["--port", "8000"]
    assert final("EXPOSE")[0].args == "8000"


def test_the_health_check_asks_readyz_on_the_served_port():
    (check,) = final("HEALTHCHECK")
    options, _, cmd = check.args.partition("CMD ")
    assert "--start-period=" in options
    probe = json.loads(cmd)
    assert probe[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/readyz" in probe[2]


def test_dockerignore_keeps_only_what_the_build_copies():
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"  # everything out, then only what is needed back in
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for i in INSTRUCTIONS:
        if i.name == "COPY" and not i.args.startswith("--from"):
            copied.update(p.rstrip("/") for p in i.args.split()[:-1])
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


# -- the entrypoint, run as the image runs it --------------------------------------------


def _run_as() -> list[str]:
    """The prefix that runs a command as the image's user: its numeric uid and gid when this
    process is root (as in CI), else this (already unprivileged) user.

    The one privilege kept is CAP_DAC_READ_SEARCH, to read and search anything: this
    machine's Python may live under /root (mode 700), where the image has its virtualenv
    readable by all in /opt/vigil. It grants no write anywhere, which is what is checked."""
    if os.geteuid() != 0:
        return []
    uid = arg_default("UID")
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *caps]


def _owner() -> int:
    return int(arg_default("UID")) if os.geteuid() == 0 else os.geteuid()


@dataclass
class Layout:
    root: Path
    home: Path
    """VIGIL_HOME: the one directory the process may write (the image's volume)."""
    tmp: Path
    """/tmp of the container (a tmpfs or an emptyDir)."""
    readonly_home: Path
    """HOME: readable, not writable."""
    token: str


@pytest.fixture
def layout() -> Iterator[Layout]:
    """A VIGIL_HOME with a registered model and a predict key, owned by the image's user,
    beside a HOME it cannot write. Outside pytest's private temporary directory, which
    another user cannot enter."""
    root = Path(tempfile.mkdtemp(prefix="vigil-image-"))
    root.chmod(0o755)
    try:
        home, tmp, readonly = root / "vigil-home", root / "tmp", root / "home"
        readonly.mkdir(mode=0o555)
        X, y = make_classification(n_samples=200, n_features=4, random_state=3)
        frame = pd.DataFrame(X, columns=list("abcd"))
        vigil = Vigil(load_settings(home=home))
        model = LogisticRegression().fit(frame, y)
        vigil.register(
            model, name="churn", reference=frame.assign(y=y), target="y", alias="production"
        )
        token = KeyStore.from_vigil(vigil).create("predict", name="image-test").token
        tmp.mkdir()
        for path in (home, tmp):
            for entry in [path, *path.rglob("*")]:
                os.chown(entry, _owner(), _owner())
        home.chmod(0o750)
        yield Layout(root, home, tmp, readonly, token)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _environment(layout: Layout) -> dict[str, str]:
    """The image's ENV, its paths mapped onto this machine: the virtualenv of this Python
    for /opt/vigil, the layout's directories for VIGIL_HOME, /tmp and HOME."""
    env = image_env()
    venv_bin = str(Path(sys.executable).parent)
    mapped = {
        "PATH": env["PATH"].replace("/opt/vigil/bin", venv_bin).replace("$PATH", "/usr/bin:/bin"),
        "VIGIL_HOME": str(layout.home),
        "HOME": str(layout.readonly_home),
        "TMPDIR": str(layout.tmp),
        # tini is PID 1 in the image; here it must ask to adopt orphans to reap them.
        "TINI_SUBREAPER": "1",
    }
    extra = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "LANG")}
    return {**env, **mapped, **extra}


def _written_outside(layout: Layout, since: set[Path]) -> list[Path]:
    """Files the image's user owns in the machine's shared writable directories or under
    the layout, other than VIGIL_HOME and the container's /tmp."""
    found = []
    for shared in (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")):
        with contextlib.suppress(OSError):
            found += [p for p in shared.iterdir() if p not in since and _owned(p)]
    found += [p for p in layout.readonly_home.rglob("*")]
    return [p for p in found if p != layout.root]


def _owned(path: Path) -> bool:
    try:
        return path.lstat().st_uid == _owner()
    except OSError:
        return False


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_the_entrypoint_serves_unprivileged_and_sigterm_ends_it_cleanly(
    layout: Layout, workers: int
):
    port = free_port()
    # `docker run IMAGE --port P --workers W`: the arguments replace CMD, after ENTRYPOINT.
    cmd = command()
    args = [*cmd[:1], str(port), *cmd[2:], "--workers", str(workers)]
    before = {p for d in ("/tmp", "/var/tmp", "/dev/shm") for p in _ls(Path(d))}
    log = layout.root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_run_as(), *entrypoint(), *args],
            cwd=layout.home,  # the image's WORKDIR
            env=_environment(layout),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The image's own HEALTHCHECK command, pointed at this port, says ready.
        probe = json.loads(final("HEALTHCHECK")[0].args.partition("CMD ")[2])
        probe[2] = probe[2].replace(":8000/", f":{port}/")
        wait_for(
            lambda: (
                proc.poll() is not None
                or subprocess.run(
                    [*_run_as(), *probe], env=_environment(layout), capture_output=True
                ).returncode
                == 0
            ),
            timeout=120,
            what=lambda: f"/readyz through the HEALTHCHECK command\n{log.read_text()}",
        )
        assert proc.poll() is None, log.read_text()
        url = f"http://127.0.0.1:{port}/v1/models/churn/predict"
        body = {"instances": [{"a": 0.1, "b": -0.3, "c": 1.2, "d": 0.0}]}
        assert httpx.post(url, json=body, timeout=10).status_code == 401  # keys are on
        auth = {"Authorization": f"Bearer {layout.token}"}
        answered = httpx.post(url, json=body, headers=auth, timeout=10)
        assert answered.status_code == 200, answered.text
        assert answered.json()["model"] == "churn"

        tree = _descendants(proc.pid)
        serving = [p for p in tree if "serve" in _cmdline(p)]
        assert serving, "vigil serve runs below tini"
        # `docker stop` / the kubelet: SIGTERM to PID 1 only.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == sigterm_status(workers), log.read_text()

        def left() -> set[int]:
            return {p for p in tree if Path(f"/proc/{p}").exists() and _cmdline(p)}

        # multiprocessing's resource tracker ends when it reads EOF from the supervisor
        # that just exited: give it a moment, as a container runtime does.
        wait_for(
            lambda: not left(),
            timeout=10,
            what=lambda: f"processes left behind: {[_cmdline(p) for p in left()]}",
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text, text
    home_files = {p.relative_to(layout.home).parts[0] for p in layout.home.rglob("*")}
    assert "vigil.db" in home_files
    assert _written_outside(layout, before) == []


def _ls(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_the_documented_run_command_matches_the_image():
    """docs/deploy.md's `docker run` passes only arguments vigil serve takes and mounts the
    image's volume."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    env = image_env()
    runs = re.findall(r"docker run[^\n]*(?:\\\n[^\n]*)*", text)
    assert runs, "docs/deploy.md shows how to run the image"
    for run in runs:
        assert f":{env['VIGIL_HOME']}" in run, run


# -- the image itself, built and run with podman ------------------------------------------

PODMAN = ["podman", "--runtime", "runc"]
"""crun, podman's default runtime, refuses this machine's cgroups (v1 and v2 side by side):
docs/deploy.md, "Building and running it on this project's machines"."""
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
"""podman's default limits exceed this machine's hard limits, which a container may not raise."""
BASE = "localhost/debian-python:3.11-bookworm"
"""The base image, made from a Debian root filesystem: no registry is reachable."""
TAG = "localhost/vigil:test"


def _podman(*args: str, timeout: float = 600, check: bool = True) -> str:
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert not check or done.returncode == 0, f"podman {' '.join(args)}:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The image, built from this tree with podman on a Debian base made by debootstrap
    (kept between runs: it depends on nothing here)."""
    for tool in ("podman", "runc", "debootstrap"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install podman runc debootstrap"
    if subprocess.run([*PODMAN, "image", "exists", BASE], check=False).returncode != 0:
        rootfs = Path(tempfile.mkdtemp(prefix="vigil-rootfs-", dir="/var/tmp"))
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase",
                 "--include=python3,python3-venv,ca-certificates,tini",
                 "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                check=True, capture_output=True, timeout=1200,
            )  # fmt: skip
            # As a context: the pipe's read end is closed here, not left to the collector
            # (an unclosed file is a ResourceWarning, an error under our warning filter).
            with subprocess.Popen(
                ["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
            ) as tar:
                subprocess.run([*PODMAN, "import", "-", BASE], stdin=tar.stdout, check=True)
            assert tar.returncode == 0
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
    certs = "/etc/ssl/certs/ca-certificates.crt"  # this machine's, for pip in the build
    dangling = set(_podman("images", "--filter", "dangling=true", "--quiet").split())
    _podman(
        "build", *LIMITS, "--format", "docker", "--network", "host",
        "-v", f"{certs}:{certs}:ro", "--build-arg", f"PYTHON_IMAGE={BASE}",
        "-t", TAG, str(ROOT), timeout=1800,
    )  # fmt: skip
    try:
        yield TAG
    finally:
        # The image and the build stage's, left untagged by this build.
        stages = set(_podman("images", "--filter", "dangling=true", "--quiet").split())
        _podman("rmi", "--force", TAG, *sorted(stages - dangling), check=False)


@pytest.mark.container
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_image_builds_serves_read_only_and_stops_cleanly(image: str, tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir(mode=0o755)
    X, y = make_classification(n_samples=200, n_features=4, random_state=3)
    frame = pd.DataFrame(X, columns=list("abcd"))
    import skops.io

    skops.io.dump(LogisticRegression().fit(frame, y), models / "model.skops")
    frame.assign(y=y).to_parquet(models / "reference.parquet")
    for path in models.iterdir():
        path.chmod(0o644)
    tmp_path.chmod(0o755)
    volume = f"vigil-test-{os.getpid()}"
    name = f"vigil-test-{os.getpid()}"
    port = free_port()
    home = image_env()["VIGIL_HOME"]
    run = ["run", *LIMITS, "--network", "host", "-v", f"{volume}:{home}"]
    tool = [*run, "--rm", "-v", f"{models}:/models:ro", "--entrypoint", "vigil", image]
    try:
        created = json.loads(_podman(*tool, "key", "create", "--role", "predict", "--json"))
        _podman(*tool, "register", "churn", "/models/model.skops",
                "--reference", "/models/reference.parquet", "--target", "y",
                "--alias", "production")  # fmt: skip
        _podman(*run, "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", image,
                "--port", str(port), "--workers", "2")  # fmt: skip

        def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            return False

        wait_for(ready, timeout=120, what=lambda: _podman("logs", name, check=False))
        # The image's HEALTHCHECK, run by podman, asks port 8000: pointed at this one.
        probe = json.loads(final("HEALTHCHECK")[0].args.partition("CMD ")[2])
        probe[2] = probe[2].replace(":8000/", f":{port}/")
        _podman("exec", name, *probe)
        top = _podman("top", name, "user", "pid", "args").splitlines()[1:]
        first = top[0].split()
        assert first[:2] == ["vigil", "1"] and first[2] == "tini", top
        assert all(line.split()[0] == "vigil" for line in top), top
        url = f"http://127.0.0.1:{port}/v1/models/churn/predict"
        body = {"instances": [{"a": 0.1, "b": -0.3, "c": 1.2, "d": 0.0}]}
        auth = {"Authorization": f"Bearer {created['token']}"}
        answered = httpx.post(url, json=body, headers=auth, timeout=10)
        assert answered.status_code == 200 and answered.json()["model"] == "churn"
        # Nothing but VIGIL_HOME and /tmp is writable.
        refused = subprocess.run(
            [*PODMAN, "exec", name, "python", "-c", "open('/opt/vigil/x', 'w')"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "Read-only file system" in refused.stderr
        _podman("stop", "-t", "40", name)
        status = _podman("inspect", name, "--format", "{{.State.ExitCode}}").strip()
        assert int(status) == sigterm_status(workers=2), _podman("logs", name, check=False)
    finally:
        _podman("rm", "--force", name, check=False)
        _podman("volume", "rm", "--force", volume, check=False)
