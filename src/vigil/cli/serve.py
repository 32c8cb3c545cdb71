"""``vigil serve``: serve registered models over HTTP, following their aliases.

Only translates options into :func:`vigil.serving.workers.serve` with the composition
root's server (:func:`vigil.app.serving_app_from_environment`); every worker reads what to
serve from ``VIGIL_WORKER_*`` variables this command sets.

Authentication is decided here, where the address is known, and handed to the workers as
``VIGIL_SERVE_AUTH=on|off``: always on for a non-loopback address (and the server refuses
to start before a key that may predict exists), off by default on loopback, with a warning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from vigil.console import err_console, fail, shown
from vigil.errors import ConfigurationError
from vigil.serving.workers import check_port, is_loopback

PROVIDER = "vigil.app:serving_app_from_environment"
_JSON_LINES = {"on": False}
"""Whether ``--log-format json`` asked for JSON lines (then :func:`_say` writes them too)."""


def _say(markup: str, level: str = "INFO") -> None:
    """One line on stderr: as the console prints it, or with ``--log-format json`` as a
    JSON log line like the workers' (logger ``vigil.serve``), so a log shipper reads one
    format."""
    if not _JSON_LINES["on"]:
        err_console.print(markup, highlight=False, soft_wrap=True)
        return
    import logging
    import sys

    from rich.text import Text

    from vigil.serving.logs import JsonFormatter

    record = logging.LogRecord(
        "vigil.serve", getattr(logging, level), "", 0, Text.from_markup(markup).plain, (), None
    )
    sys.stderr.write(JsonFormatter().format(record) + "\n")
    sys.stderr.flush()


def _read_config(path: Path) -> dict[str, Any]:
    """The ``serve:`` section of a ``vigil.yaml`` (ServingSettings fields plus ``aliases``
    and ``poll_interval``)."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    section = data.get("serve", {}) if isinstance(data, dict) else {}
    if not isinstance(section, dict):
        fail(f"{path}: 'serve' must be a mapping of settings")
    return section


def _environment(
    config: dict[str, Any], models: list[str], aliases: dict[str, str], poll: float | None
) -> dict[str, str]:
    from vigil.serving.config import ServingSettings, load_serving_settings

    env: dict[str, str] = {}
    for key, value in config.items():
        if key in ("aliases", "poll_interval"):
            continue
        if key not in ServingSettings.model_fields:
            known = ", ".join(sorted([*ServingSettings.model_fields, "aliases", "poll_interval"]))
            fail(f"unknown serve setting {key!r} in the config file; known: {known}")
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, list | tuple):  # allowed_hosts, allowed_origins
            text = ",".join(map(str, value))
        else:
            text = str(value)
        env[f"VIGIL_SERVE_{key.upper()}"] = text
    # The file's values and the VIGIL_SERVE_* variables, checked once here rather than in
    # every worker.
    load_serving_settings(**{k: v for k, v in config.items() if k in ServingSettings.model_fields})
    env["VIGIL_WORKER_MODELS"] = json.dumps(models)
    env["VIGIL_WORKER_ALIASES"] = json.dumps({**config.get("aliases", {}), **aliases})
    interval = poll if poll is not None else config.get("poll_interval", 1.0)
    env["VIGIL_WORKER_POLL_INTERVAL"] = str(float(interval))
    return env


def _authentication(host: str, requested: str) -> bool:
    """Whether the server on ``host`` checks API keys; refuses what would be unsafe.

    A non-loopback address always checks them (``off`` is refused), and a server that
    checks them refuses to start before a key that may predict exists: it would only
    answer 401.
    """
    if requested not in ("auto", "on", "off"):
        fail(f"--auth takes auto, on or off (got {requested[:20]!r})")
    loopback = is_loopback(host)
    if requested == "off" and not loopback:
        fail(
            f"refusing to serve on {host} with authentication off: a non-loopback address "
            "needs API keys; drop --auth off (or VIGIL_SERVE_AUTH=off), or serve on 127.0.0.1"
        )
    if requested == "off" or (requested == "auto" and loopback):
        return False
    from vigil.app import default
    from vigil.auth.keys import KeyStore

    if not KeyStore.from_vigil(default()).has_active("predict"):
        where = "a non-loopback address" if not loopback else "authentication on"
        fail(
            f"refusing to serve on {host}: {where} needs API keys, and no active key may "
            "predict; create one with: vigil key create --role predict"
        )
    return True


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="TCP port (0: any free port, shown when ready)."),
    grpc_port: int = typer.Option(
        None,
        "--grpc-port",
        min=1,
        max=65535,
        help="Also serve the Open Inference Protocol v2 over gRPC on this port (needs vigil[grpc]).",
    ),
    workers: int = typer.Option(1, min=1, help="Worker processes sharing the port."),
    config: Path = typer.Option(None, "--config", help="vigil.yaml with a 'serve:' section."),
    model: list[str] = typer.Option(
        None, "--model", help="models:/NAME@ALIAS or models:/NAME/VERSION (repeatable)."
    ),
    alias: list[str] = typer.Option(
        None, "--alias", help="NAME=ALIAS: serve this alias of NAME instead of production."
    ),
    poll_interval: float = typer.Option(
        None, help="Seconds between checks for alias moves (default 1; 0 turns it off)."
    ),
    log_level: str = typer.Option(
        "warning", help="Level of vigil's own loggers and uvicorn's: debug, info, warning, error."
    ),
    log_format: str = typer.Option(
        "text", "--log-format", help="text, or json: one JSON object a line (time, level, ...)."
    ),
    access_log: bool = typer.Option(
        None,
        "--access-log/--no-access-log",
        help="One log line per request: request id, model, version, status, latency "
        "(default: VIGIL_SERVE_ACCESS_LOG, off).",
    ),
    auth: str = typer.Option(
        None,
        "--auth",
        help="API keys: auto (on unless the host is loopback), on, or off (loopback only).",
    ),
    drain_timeout: float = typer.Option(
        None,
        "--drain-timeout",
        min=0,
        help="On SIGTERM/SIGINT, seconds to finish the requests held before answering them "
        "503 (default: VIGIL_SERVE_DRAIN_TIMEOUT, 30).",
    ),
    shutdown_delay: float = typer.Option(
        None,
        "--shutdown-delay",
        min=0,
        help="On SIGTERM, seconds to keep accepting requests with /readyz already 503, so a "
        "load balancer stops routing here first (default: VIGIL_SERVE_SHUTDOWN_DELAY, 0).",
    ),
) -> None:
    """Serve the production version of every registered model (or the --model URIs),
    loading and warming each before /readyz turns ready, and following alias moves.
    SIGTERM drains: /readyz turns 503, requests held are answered, exit status 0."""
    from vigil.serving.logs import check_level, logging_config
    from vigil.serving.workers import serve as run_workers

    if log_format not in ("text", "json"):
        fail(f"--log-format takes text or json (got {log_format[:20]!r})")
    try:
        level = check_level(log_level)
    except ValueError as exc:
        fail(f"--log-level: {exc}")
    try:
        check_port(port)
    except ConfigurationError as exc:
        fail(exc.message)
    pairs: dict[str, str] = {}
    for item in alias or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            fail(f"--alias takes NAME=ALIAS, got {item!r}")
        pairs[name] = value
    settings = _read_config(config) if config is not None else {}
    if drain_timeout is not None:
        settings["drain_timeout"] = drain_timeout
    if shutdown_delay is not None:
        settings["shutdown_delay"] = shutdown_delay
    env = _environment(settings, list(model or []), pairs, poll_interval)
    _check_schema()
    requested = auth or settings.get("auth") or os.environ.get("VIGIL_SERVE_AUTH") or "auto"
    enabled = _authentication(host, str(requested))
    env["VIGIL_SERVE_AUTH"] = "on" if enabled else "off"  # the workers need no host to decide
    if access_log is not None:
        env["VIGIL_SERVE_ACCESS_LOG"] = "true" if access_log else "false"
    os.environ.update(env)
    _JSON_LINES["on"] = log_format == "json"

    def bound(real_port: int) -> None:
        """Once the socket is bound: the address it really listens on (``--port 0``)."""
        where = shown(f"http://{_bracketed(host)}:{real_port}")
        if enabled:
            _say(f"authentication is on: send 'Authorization: Bearer <token>' to {where}")
        else:
            _say(
                "[yellow]warning:[/] authentication is off: anyone on this machine can call "
                f"{where}",
                "WARNING",
            )
        _announce_when_ready(host, real_port, workers)

    run_workers(
        PROVIDER,
        host=host,
        port=port,
        workers=workers,
        grpc_port=grpc_port,
        log_level=level,
        log_config=logging_config("json" if log_format == "json" else "text", level),
        on_bound=bound,
    )


def _check_schema() -> None:
    """With ``VIGIL_DATABASE_MIGRATE=refuse``, stop here, once, on a schema that is not at
    the newest migration (rather than in every worker); the error says to run
    ``vigil db upgrade``."""
    from vigil.app import default

    root = default()
    if root.settings.database_migrate == "refuse":
        root.database.check_schema()


def _bracketed(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _announce_when_ready(host: str, port: int, workers: int) -> None:
    """Say once, on stderr, when ``/readyz`` first answers 200 and where to go from there.

    A daemon thread, since the server blocks this one. It probes over a bare socket:
    importing an HTTP client would compete with the worker's own start-up for the CPU.
    """
    import socket
    import threading
    import time

    started = time.monotonic()
    # A wildcard address is probed through loopback (it is not bound here).
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    probe = wildcard.get(host, host)
    address = shown(_bracketed(host))
    target = f"[{probe}]:{port}" if ":" in probe else f"{probe}:{port}"

    def get(path: str) -> tuple[bytes, bytes]:
        """(status line, body) of a GET, or two empty strings when nothing answers."""
        try:
            with socket.create_connection((probe, port), timeout=1) as sock:
                # The address it connects to as the Host: a server checking Hosts answers it.
                sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {target}\r\n\r\n".encode())
                chunks = []
                while chunk := sock.recv(4096):
                    chunks.append(chunk)
        except OSError:
            return b"", b""
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        return head.partition(b"\r\n")[0], body

    def ours() -> bool:
        """Whether the server answering is this one (its pid, or a worker's whose parent it
        is), not another that held the port first."""
        try:
            pid = int(json.loads(get("/livez")[1])["pid"])
        except (ValueError, KeyError, TypeError):
            return False
        if pid == os.getpid():
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True  # no /proc to ask (not Linux): trust the port
        return int(stat.rpartition(")")[2].split()[1]) == os.getpid()

    def ready() -> bytes | None:
        """The body of /readyz once it answers 200 from this server, else None."""
        status, body = get("/readyz")
        return body if status.split(b" ")[1:2] == [b"200"] and ours() else None

    def watch() -> None:
        while time.monotonic() - started < 3600:
            body = ready()
            if body is not None:
                _say(
                    f"ready in {time.monotonic() - started:.1f} s: http://{address}:{port} "
                    f"({workers} worker{'s' if workers > 1 else ''}); GET /v1/models lists "
                    "the models, /docs the API, /metrics the metrics"
                )
                if _serves_nothing(body):
                    _say(
                        "[yellow]warning:[/] no model to serve yet: register one with "
                        "`vigil register NAME MODEL_FILE --reference DATA --alias production` "
                        "(or `vigil alias set NAME production VERSION`); it is picked up "
                        "without a restart",
                        "WARNING",
                    )
                return
            time.sleep(0.05)

    threading.Thread(target=watch, name="vigil-ready", daemon=True).start()


def _serves_nothing(readyz: bytes) -> bool:
    """Whether a /readyz body says the server serves no model version."""
    try:
        return bool(json.loads(readyz).get("models") == 0)
    except (ValueError, AttributeError):
        return False


def install(app: typer.Typer) -> None:
    app.command("serve")(serve)
