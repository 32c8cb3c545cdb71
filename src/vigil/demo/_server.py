"""A ``vigil serve`` child process for the demo: started on a free loopback port, stopped
cleanly at the end, its output kept in a log file under the home directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from vigil.serving.server import free_port


class DemoServer:
    """``with DemoServer(home) as server: server.url`` — a real ``vigil serve`` process."""

    def __init__(self, home: Path, *, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = env or {}
        self.log_path = home / "demo-server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> DemoServer:
        self._log = self.log_path.open("wb")
        env = {**os.environ, "VIGIL_HOME": str(self.home), **self.env}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--poll-interval",
                "0.5",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:

        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SystemExit(
                    f"demo: vigil serve exited with {self._process.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"demo: vigil serve was not ready in {timeout:.0f} s; see {self.log_path}")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
