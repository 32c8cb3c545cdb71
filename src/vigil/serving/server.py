"""Run the serving app with uvicorn on the fast stack (httptools parser, uvloop loop; each
response written with one system call: :mod:`vigil.serving.protocol`).

uvicorn is imported only here, inside :func:`run`, so ``import vigil`` and the CLI start
fast. Models are loaded and warmed by the app's lifespan before ``/readyz`` turns 200.
"""

from __future__ import annotations

import socket
from typing import Any

from vigil.errors import require


def config(app: Any, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> Any:
    """A ``uvicorn.Config`` for ``app`` on the fast stack; ``options`` override defaults."""
    uvicorn = require("uvicorn", "serve")
    from vigil.serving.protocol import HttpToolsProtocol  # imports uvicorn: only when serving

    settings: dict[str, Any] = {
        # uvicorn's httptools protocol, each response written at once (see its module)
        "http": HttpToolsProtocol,
        "loop": "uvloop",
        "lifespan": "on",
        "ws": "none",  # no WebSocket route: don't import a WebSocket implementation
        "access_log": False,
        # vigil reads no client address, so uvicorn's X-Forwarded-For rewriting is only a
        # cost on every request; and a server header tells an attacker what to look up.
        "proxy_headers": False,
        "server_header": False,
        "log_level": "warning",
        "timeout_keep_alive": 30,
        # How long the supervisor waits for a worker to answer its ping, and for a new one
        # to be ready when SIGHUP replaces them. uvicorn's 5 s is shorter than loading
        # and warming a model takes on a busy machine, which would abort every rolling
        # restart; a worker stuck for this long is still replaced.
        "timeout_worker_healthcheck": 30,
    }
    settings.update(options)
    return uvicorn.Config(app, host=host, port=port, **settings)


def run(app: Any, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM drain in-flight requests, see
    :mod:`vigil.serving.drain`)."""
    require("uvicorn", "serve")
    from vigil.serving.drain import DrainingServer  # uvicorn: only when serving

    DrainingServer(config(app, host, port, **options)).run()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
