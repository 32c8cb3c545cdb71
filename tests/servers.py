"""Real servers for the tests: PostgreSQL, Redis, an S3-compatible server (moto) and
Alertmanager.

Each is started once per test session on a free loopback port and torn down at the end.
Nothing here skips: a missing server binary is a test failure that says how to install it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests._waiting import wait_for


def needs(param: str, *servers: str) -> Any:
    """A fixture parameter marked with the servers it starts through
    ``request.getfixturevalue`` (which conftest's marking by fixture name cannot see), e.g.
    ``needs("postgres-local", "postgres")``: ``-m "not postgres"`` then leaves it out."""
    return pytest.param(param, marks=[getattr(pytest.mark, s) for s in servers])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- PostgreSQL --------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie not yet reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return True


@contextmanager
def vigil_serve_logged(
    env: dict[str, str], port: int, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], Callable[[], str]]]:
    """``vigil serve --port PORT --log-level info ARGS`` (through this interpreter) with
    ``env``, its output kept in a temporary file: the process, and a function returning
    what it printed so far. Stopped with SIGTERM on the way out (up to 60 s)."""
    with tempfile.TemporaryFile() as log:
        command = [sys.executable, "-m", "vigil.cli", "serve", "--port", str(port)]
        proc = subprocess.Popen(
            [*command, "--log-level", "info", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def output() -> str:
            log.seek(0)
            return log.read().decode()

        try:
            yield proc, output
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def find_postgres_bin() -> Path:
    """The newest Debian PostgreSQL ``bin`` directory, or fail saying how to install it."""
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").is_file() and re.fullmatch(r"\d+", path.parent.name):
            candidates.append((int(path.parent.name), path))
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin; run "
            "`make test` as root (it installs Debian's postgresql package), or "
            "`apt-get install postgresql`",
            pytrace=False,
        )
    return max(candidates)[1]


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL cluster (fsync off: fast, and the data is disposable)."""

    bin_dir: Path
    base_dir: Path
    port: int
    user: str = "vigil"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; run it as the postgres system user.
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.base_dir / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{tail}"
            )
        return result

    def start(self) -> None:
        if os.geteuid() == 0:
            try:
                shutil.chown(self.base_dir, user="postgres", group="postgres")
            except LookupError:
                pytest.fail(
                    "running as root but there is no 'postgres' system user to run "
                    "PostgreSQL as; run `make test` as root (it installs Debian's postgresql)",
                    pytrace=False,
                )
        self._run(
            self.bin_dir / "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.resume()

    def resume(self) -> None:
        """Start the server again on the same port and data (after :meth:`pause`)."""
        options = " ".join(
            f"-c {setting}"
            for setting in (
                f"port={self.port}",
                "listen_addresses=127.0.0.1",
                f"unix_socket_directories={self.base_dir}",
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "shared_buffers=16MB",
                "max_connections=100",
            )
        )
        self._run(
            self.bin_dir / "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.base_dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def pause(self) -> None:
        """Stop the server, keeping its data: clients are disconnected and refused."""
        self._run(self.bin_dir / "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        try:
            self.pause()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin("CREATE DATABASE {}", name)
        return self.url(name)

    def create_database_from(self, template: str, prefix: str = "t") -> str:
        """A new database copied from ``template`` (which must have no open connections)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", url.rsplit("/", 1)[1])


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster in a private temp dir; stop and delete it afterwards."""
    bin_dir = find_postgres_bin()
    # Not pytest's tmp dir: that is private to root, and the server runs as postgres.
    base_dir = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
    server = PostgresServer(bin_dir=bin_dir, base_dir=base_dir, port=free_port())
    try:
        server.start()
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()


# -- Redis -------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A throw-away redis-server (no persistence) on a loopback port."""

    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@contextmanager
def redis_server(base_dir: Path) -> Iterator[RedisServer]:
    """Start Debian's ``redis-server`` on a free port; stop it afterwards."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if binary is None:
        pytest.fail(
            "redis-server not found; run `make test` as root (it installs Debian's "
            "redis-server package), or `apt-get install redis-server`",
            pytrace=False,
        )
    port = free_port()
    with (base_dir / "redis.log").open("wb") as log:
        server = subprocess.Popen(
            [
                *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base_dir)),
                *("--save", "", "--appendonly", "no", "--protected-mode", "yes"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    try:
        _wait_for_port(port, process=server)
        yield RedisServer(port)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# -- Alertmanager ------------------------------------------------------------------------


@dataclass
class AlertmanagerServer:
    """Debian's Alertmanager on a loopback port, serving under ``route_prefix``."""

    port: int
    route_prefix: str
    base_dir: Path

    @property
    def url(self) -> str:
        """Its base URL, as vigil's ``monitor.alertmanagers`` takes it."""
        return f"http://127.0.0.1:{self.port}{self.route_prefix}"

    def alerts(self, **matchers: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (active, silenced and inhibited), filtered by labels."""
        import httpx

        query = [("filter", f'{k}="{v}"') for k, v in matchers.items()]
        response = httpx.get(f"{self.url}/api/v2/alerts", params=query, timeout=10)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def log(self) -> str:
        return (self.base_dir / "alertmanager.log").read_text(errors="replace")


def find_alertmanager() -> str:
    """Debian's Alertmanager binary, or fail saying how to install it."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
        )
        if found is not None:
            return found
    pytest.fail(
        "Alertmanager not found; run `make test` as root (it installs Debian's "
        "prometheus-alertmanager package), or `apt-get install prometheus-alertmanager`",
        pytrace=False,
    )


@contextmanager
def alertmanager_server(
    base_dir: Path, config: Path, route_prefix: str = "/alertmanager"
) -> Iterator[AlertmanagerServer]:
    """Start Alertmanager with ``config`` on a free port (no cluster, its data in
    ``base_dir``); stop it afterwards."""
    import httpx

    binary = find_alertmanager()
    port = free_port()
    with (base_dir / "alertmanager.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.route-prefix={route_prefix}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    server = AlertmanagerServer(port, route_prefix, base_dir)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"alertmanager exited with {process.returncode}:\n{server.log()}")
        try:
            return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 30, what=lambda: f"Alertmanager to be ready:\n{server.log()}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- S3 (moto) ---------------------------------------------------------------------------


@dataclass
class S3Server:
    """An S3-compatible server (moto in server mode) with one bucket."""

    endpoint_url: str
    bucket: str

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")


S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server(config_dir: Path) -> Iterator[S3Server]:
    """moto's S3 server on a free port, dummy credentials in the environment.

    It runs in its own process: in a thread of the test process it would compete with the
    tests for the GIL and answer half as fast.
    """
    import sys

    with pytest.MonkeyPatch.context() as env:
        for key, value in S3_TEST_ENV.items():
            env.setenv(key, value)
        # Never read a developer's real AWS configuration in tests.
        env.setenv("AWS_CONFIG_FILE", str(config_dir / "aws-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_dir / "aws-credentials"))
        port = free_port()
        with (config_dir / "moto.log").open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            _wait_for_port(port, process=server)
            s3 = S3Server(endpoint_url=f"http://127.0.0.1:{port}", bucket="vigil-test")
            s3.client().create_bucket(Bucket=s3.bucket)
            yield s3
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _die_with_parent() -> None:
    """In the child: ask Linux to stop it when the test process dies, even by SIGKILL."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_for_port(
    port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    def listening() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout, what=f"a server to listen on 127.0.0.1:{port}")


# -- HAProxy -----------------------------------------------------------------------------


def find_haproxy() -> str:
    """Debian's ``haproxy`` binary, or fail saying how to install it."""
    binary = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None
    )
    if binary is None:
        pytest.fail(
            "haproxy not found; run `make test` as root (it installs Debian's haproxy "
            "package), or `apt-get install haproxy`",
            pytrace=False,
        )
    return binary


HAPROXY_CONFIG = """\
global
    maxconn 2000
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    # A request whose server refused the connection, closed it without an answer, or
    # answered 503 (vigil's "not ready, nothing was kept, retry") is sent again, to another
    # server: the body is buffered so a POST can be replayed.
    option http-buffer-request
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response 503

frontend vigil
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # Checked often, but one slow answer on a busy machine is not a failure: a server is
    # taken out after two failed checks (a refused connection is retried elsewhere anyway).
    timeout check 2s
    default-server inter {interval_ms}ms fastinter {interval_ms}ms downinter {interval_ms}ms rise 1 fall 2
{servers}
"""


@dataclass
class HAProxy:
    """Debian's HAProxy on a loopback port, balancing over ``backends`` (``name -> port``)
    with health checks on ``/readyz`` every ``interval_ms``."""

    binary: str
    base_dir: Path
    backends: dict[str, int]
    port: int
    interval_ms: int = 100
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "admin.sock"

    def config(self) -> str:
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port} check" for name, port in self.backends.items()
        )
        return HAPROXY_CONFIG.format(
            socket=self.socket_path, port=self.port, interval_ms=self.interval_ms, servers=servers
        )

    def start(self) -> None:
        path = self.base_dir / "haproxy.cfg"
        path.write_text(self.config())
        check = subprocess.run(
            [self.binary, "-c", "-f", str(path)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
        with (self.base_dir / "haproxy.log").open("wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "-db", "-f", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        _wait_for_port(self.port, process=self.process)
        wait_for(lambda: self.socket_path.exists(), 10, what="HAProxy's admin socket")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def command(self, line: str) -> str:
        """Run one command on the admin socket (``show stat``, ...); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> list[dict[str, str]]:
        """``show stat`` of the backend's servers, one mapping per server."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return [r for r in rows if r["pxname"] == "replicas" and r["svname"] in self.backends]

    def status(self) -> dict[str, str]:
        """Each server's check status as HAProxy sees it now (``UP``, ``DOWN``...)."""
        return {r["svname"]: r["status"] for r in self.stats()}

    def wait_status(self, wanted: dict[str, str], timeout: float = 30.0) -> None:
        def reached() -> bool:
            now = self.status()
            return all(now.get(name, "").startswith(state) for name, state in wanted.items())

        wait_for(reached, timeout, what=lambda: f"HAProxy to see {wanted}: {self.status()}")

    def log(self) -> str:
        return (self.base_dir / "haproxy.log").read_text(errors="replace")


@contextmanager
def haproxy_server(
    base_dir: Path, backends: dict[str, int], interval_ms: int = 100
) -> Iterator[HAProxy]:
    """HAProxy balancing over ``backends`` on a free port; stopped afterwards."""
    proxy = HAProxy(find_haproxy(), base_dir, dict(backends), free_port(), interval_ms)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()


# -- a cluster of vigil serve replicas behind HAProxy ------------------------------------

_REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass
class VigilReplica:
    """One ``vigil serve`` process (``workers`` workers) with its own ``VIGIL_HOME`` (its
    capture log and bundle cache, as a pod's own disk) and the cluster's shared backends,
    started and stopped again as a test asks."""

    name: str
    home: Path
    port: int
    env: dict[str, str]
    workers: int = 2
    poll_interval: float = 1.0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.name}.log"

    def start(self) -> None:
        """Start the process (not waiting for it: see :meth:`wait_ready`)."""
        import sys

        assert self.process is None or self.process.poll() is not None, "already running"
        self.home.mkdir(parents=True, exist_ok=True)
        # The caller's PYTHONPATH after the repository root: a worktree run with
        # PYTHONPATH=<its src> serves that source, and the tests' model classes import.
        path = os.pathsep.join(p for p in (str(_REPOSITORY), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, **self.env, "VIGIL_HOME": str(self.home), "PYTHONPATH": path}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.pop("VIGIL_CONFIG", None)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "vigil.cli", "serve", "--port", str(self.port)),
                    *("--workers", str(self.workers), "--poll-interval", str(self.poll_interval)),
                ],
                cwd=_REPOSITORY,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def ready(self) -> bool:
        import httpx

        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"replica {self.name} is not running ({code}):\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        wait_for(
            self.ready,
            timeout,
            what=lambda: f"replica {self.name} to be ready:\n{self.output()[-4000:]}",
            interval=0.1,
        )

    def stop(self, sig: int | None = None, timeout: float = 60.0) -> int:
        """Send ``sig`` (SIGTERM by default) and wait for the exit; its return code."""
        import signal

        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process is not None else 0
        self.process.send_signal(signal.SIGTERM if sig is None else sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class VigilCluster:
    """``replicas`` behind ``proxy``, sharing one PostgreSQL database, one Redis database
    and one S3 prefix (``settings``: the keyword arguments of
    :func:`vigil.settings.load_settings` that point a process at them)."""

    replicas: list[VigilReplica]
    proxy: HAProxy
    settings: dict[str, Any]

    @property
    def url(self) -> str:
        return self.proxy.url

    def replica(self, name: str) -> VigilReplica:
        return next(r for r in self.replicas if r.name == name)

    def all_up(self, timeout: float = 60.0) -> None:
        self.proxy.wait_status({r.name: "UP" for r in self.replicas}, timeout)

    def restart(self, replica: VigilReplica) -> int:
        """SIGTERM ``replica``, start it again, wait until HAProxy sends it traffic again;
        its exit code."""
        code = replica.stop()
        replica.start()
        replica.wait_ready()
        self.proxy.wait_status({replica.name: "UP"})
        return code


@contextmanager
def vigil_cluster(
    base_dir: Path,
    settings: dict[str, Any],
    *,
    replicas: int = 3,
    workers: int = 2,
    env: dict[str, str] | None = None,
    poll_interval: float = 1.0,
) -> Iterator[VigilCluster]:
    """``replicas`` ``vigil serve`` processes on the shared backends of ``settings``
    (``database_url``, ``artifact_url``, ``s3_endpoint_url``, ``redis_url``) behind HAProxy;
    every process is stopped afterwards. ``env`` adds ``VIGIL_*`` settings for all."""
    shared = {f"VIGIL_{key.upper()}": str(value) for key, value in settings.items() if value}
    started: list[VigilReplica] = []
    try:
        for n in range(replicas):
            replica = VigilReplica(
                name=f"r{n}",
                home=base_dir / f"r{n}" / "home",
                port=free_port(),
                env={**shared, **(env or {})},
                workers=workers,
                poll_interval=poll_interval,
            )
            replica.start()
            started.append(replica)
        for replica in started:
            replica.wait_ready()
        with haproxy_server(base_dir, {r.name: r.port for r in started}) as proxy:
            cluster = VigilCluster(started, proxy, dict(settings))
            cluster.all_up()
            yield cluster
    finally:
        for replica in started:
            with contextlib.suppress(Exception):
                replica.stop()
