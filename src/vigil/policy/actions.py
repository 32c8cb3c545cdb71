"""The retrain action: start the job that trains a candidate on the export.

A **command** runs as a child process (``argv``, never through a shell) in its own process
group, with vigil's environment plus:

==============================  ================================================
``VIGIL_POLICY_RUN_ID``         the run (``vigil register --candidate-for`` checks it)
``VIGIL_POLICY_MODEL``          the model to retrain
``VIGIL_POLICY_SERVED_VERSION`` the version its ``served_alias`` points at
``VIGIL_POLICY_SERVED_URI``     ``models:/NAME/VERSION`` of that version
``VIGIL_POLICY_EXPORT_DIR``     the export's directory (``train.parquet``, ``manifest.json``)
``VIGIL_POLICY_TRAIN_FILE``     ``train.parquet`` in it (absent when nothing was labelled)
``VIGIL_POLICY_MANIFEST``       ``manifest.json`` in it
``VIGIL_POLICY_LABEL``          the label column of ``train.parquet``
==============================  ================================================

and the ``env`` of the action. Its standard output and error go to ``job.log`` in the run's
directory. A watcher thread kills the process group past ``timeout_s`` and records the exit
status in the run (``data.job``), so a job that fails without registering a candidate fails
the run at once instead of at the timeout.

A **webhook** is one POST (through :func:`vigil.monitor.webhooks.post_json`, which refuses
addresses inside the network unless allowed): ``generic`` sends the same facts as JSON;
``airflow`` sends the body of Airflow's ``POST /api/v1/dags/{dag_id}/dagRuns``,
``{"dag_run_id": RUN_ID, "conf": {...the same facts...}}``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.errors import VigilError
from vigil.policy.config import CommandAction, WebhookAction

__all__ = ["job_facts", "launch_command", "post_webhook_action"]

log = logging.getLogger("vigil.policy")
LOG_FILE = "job.log"


class ActionError(VigilError):
    """The retrain action could not be started."""

    status = 502
    code = "retrain_action_failed"


def job_facts(
    *, run_id: str, model: str, served_version: int | None, export: Path, manifest: dict[str, Any]
) -> dict[str, Any]:
    """What the job is told, as JSON (the webhook body's ``conf``)."""
    return {
        "run_id": run_id,
        "model": model,
        "served_version": served_version,
        "served_uri": f"models:/{model}/{served_version}" if served_version else None,
        "export_dir": str(export),
        "train_file": str(export / manifest["train"]) if manifest.get("train") else None,
        "manifest": str(export / "manifest.json"),
        "label": manifest.get("label"),
        "candidate_for": model,
    }


def _environment(facts: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    names = {
        "run_id": "VIGIL_POLICY_RUN_ID",
        "model": "VIGIL_POLICY_MODEL",
        "served_version": "VIGIL_POLICY_SERVED_VERSION",
        "served_uri": "VIGIL_POLICY_SERVED_URI",
        "export_dir": "VIGIL_POLICY_EXPORT_DIR",
        "train_file": "VIGIL_POLICY_TRAIN_FILE",
        "manifest": "VIGIL_POLICY_MANIFEST",
        "label": "VIGIL_POLICY_LABEL",
    }
    for key, variable in names.items():
        env.pop(variable, None)
        if facts.get(key) is not None:
            env[variable] = str(facts[key])
    env.update(extra)
    return env


def launch_command(
    action: CommandAction,
    facts: dict[str, Any],
    run_dir: Path,
    on_exit: Callable[[int | None, bool], None],
) -> int:
    """Start the command; its pid. ``on_exit(returncode, timed_out)`` is called from the
    watcher thread when it ends (``returncode`` ``None`` when it could not be waited for)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_FILE
    with log_path.open("ab") as out:
        try:
            process = subprocess.Popen(
                action.argv,
                cwd=action.cwd,
                env=_environment(facts, action.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the timeout kills it all
            )
        except OSError as exc:
            raise ActionError(
                f"could not start the retrain command {action.argv[0]!r}: {exc.strerror or exc}; "
                "check action.argv (the program must exist and be executable)"
            ) from None

    def watch() -> None:
        timed_out = False
        try:
            code: int | None = process.wait(timeout=action.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        except Exception:  # never let the watcher die silently
            log.exception("could not wait for the retrain command")
            code = None
        try:
            on_exit(code, timed_out)
        except Exception:
            log.exception("could not record the retrain command's end")

    threading.Thread(target=watch, name=f"vigil-policy-job-{process.pid}", daemon=True).start()
    return process.pid


def post_webhook_action(
    action: WebhookAction, facts: dict[str, Any], *, allow_private: bool
) -> dict[str, Any]:
    """POST the job's facts; what the receiver answered (status, and its JSON if small)."""
    import httpx  # only to call the webhook

    from vigil.monitor.webhooks import post_json

    if action.format == "airflow":
        body: dict[str, Any] = {"dag_run_id": f"vigil-{facts['run_id']}", "conf": facts}
    else:
        body = facts
    headers = {k: v.get_secret_value() for k, v in action.headers.items()}
    url = action.url.get_secret_value()
    try:
        with httpx.Client(timeout=30.0, follow_redirects=False, headers=headers) as client:
            response = post_json(client, url, body, allow_private=allow_private)
    except httpx.HTTPError as exc:
        raise ActionError(
            f"the retrain webhook could not be called: {type(exc).__name__}"
        ) from None
    if not response.is_success:
        raise ActionError(
            f"the retrain webhook answered HTTP {response.status_code}; check its URL and "
            "credentials (action.url, action.headers)",
            detail={"status": response.status_code},
        )
    answer: dict[str, Any] = {"status": response.status_code}
    if len(response.content) <= 4096:
        with contextlib.suppress(ValueError):
            answer["body"] = response.json()
    return answer
