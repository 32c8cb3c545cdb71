"""``vigil serve``: serve registered models over HTTP, following their aliases.

Only translates options into :func:`vigil.serving.workers.serve` with the registry-backed
provider (:mod:`vigil.serving.registry_provider`); every worker reads what to serve from
``VIGIL_WORKER_*`` variables this command sets.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import typer

from vigil.cli._output import err_console, fail

PROVIDER = "vigil.serving.registry_provider:from_environment"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    from vigil.serving.config import ServingSettings

    env: dict[str, str] = {}
    for key, value in config.items():
        if key in ("aliases", "poll_interval"):
            continue
        if key not in ServingSettings.model_fields:
            known = ", ".join(sorted([*ServingSettings.model_fields, "aliases", "poll_interval"]))
            fail(f"unknown serve setting {key!r} in the config file; known: {known}")
        env[f"VIGIL_SERVE_{key.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    ServingSettings(**{k: v for k, v in config.items() if k in ServingSettings.model_fields})
    env["VIGIL_WORKER_MODELS"] = json.dumps(models)
    env["VIGIL_WORKER_ALIASES"] = json.dumps({**config.get("aliases", {}), **aliases})
    interval = poll if poll is not None else config.get("poll_interval", 1.0)
    env["VIGIL_WORKER_POLL_INTERVAL"] = str(float(interval))
    return env


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
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
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve the production version of every registered model (or the --model URIs),
    loading and warming each before /readyz turns ready, and following alias moves."""
    from vigil.serving.workers import serve as run_workers

    if not is_loopback(host):
        fail(
            f"refusing to serve on {host}: a non-loopback address needs API keys, which "
            "this server does not enforce yet; serve on 127.0.0.1 behind an authenticating "
            "proxy"
        )
    pairs: dict[str, str] = {}
    for item in alias or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            fail(f"--alias takes NAME=ALIAS, got {item!r}")
        pairs[name] = value
    settings = _read_config(config) if config is not None else {}
    os.environ.update(_environment(settings, list(model or []), pairs, poll_interval))
    err_console.print(
        f"[yellow]warning:[/] authentication is off: anyone on this machine can call "
        f"http://{host}:{port}",
        highlight=False,
    )
    run_workers(PROVIDER, host=host, port=port, workers=workers, log_level=log_level)


def install(app: typer.Typer) -> None:
    app.command("serve")(serve)
