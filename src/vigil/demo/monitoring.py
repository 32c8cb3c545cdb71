"""Demo stage: normal then shifted traffic, labels sent back, monitoring finds the drift,
names the features that moved, measures the accuracy drop and fires an alert."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console

from vigil.console import shown, table
from vigil.demo._data import MODEL_NAME
from vigil.demo._webhook import WebhookReceiver
from vigil.monitor.cycle import monitor_once
from vigil.monitor.settings import MonitorSettings, Webhook

SHIFTED = tuple(
    f"{stat}_{what}"
    for stat in ("mean", "worst")
    for what in ("radius", "perimeter", "area", "texture")
)
"""Features the demo moves by 1.5 reference standard deviations in its second phase."""
BATCH = 9
"""Rows per request: the holdout's 171 rows make 19 requests, so each phase fills one
count window (windows never split a request)."""


def shift(rows: Any, reference: Any) -> Any:
    """``rows`` with the :data:`SHIFTED` features moved by 1.5 reference standard deviations."""
    shifted = rows.reset_index(drop=True).copy()
    for name in SHIFTED:
        shifted[name] = shifted[name] + 1.5 * float(reference[name].std())
    return shifted


def _send(http: Any, rows: Any, labels: Any, phase: str) -> int:
    """Predict ``rows`` in requests of ``BATCH`` rows, then send the true labels back. The
    requests carry ids of the demo's own (``X-Request-ID``), so the rows the update
    policy's export holds out for its gate (by a hash of the id) are the same every run."""
    feedback: list[dict[str, Any]] = []
    for start in range(0, len(rows), BATCH):
        chunk = rows.iloc[start : start + BATCH]
        r = http.post(
            f"/v1/models/{MODEL_NAME}/predict",
            json={"instances": chunk.to_dict(orient="records")},
            headers={"x-request-id": f"{phase}-{start // BATCH}"},
        )
        r.raise_for_status()
        rid = r.json()["request_id"]
        feedback.extend(
            {"request_id": rid, "row": i, "label": int(y)}
            for i, y in enumerate(labels[start : start + BATCH])
        )
    r = http.post("/v1/feedback", json={"feedback": feedback})
    r.raise_for_status()
    return len(feedback)


def watch(
    v: Any, url: str, holdout: Any, holdout_y: Any, reference: Any, console: Console
) -> dict[str, Any]:
    """Run the monitoring stage against the server at ``url``; returns what it found."""

    window_rows = len(holdout)
    labels = np.asarray(holdout_y)
    normal = holdout.reset_index(drop=True)
    shifted = shift(holdout, reference)

    with httpx.Client(base_url=url, timeout=30) as http:
        console.print(f"   {window_rows} held-out rows as they are, labels sent back")
        _send(http, normal, labels, "normal")
        console.print(
            f"   the same {window_rows} rows with {len(SHIFTED)} size and texture features "
            "shifted by 1.5 σ, labels sent back"
        )
        _send(http, shifted, labels, "shifted")

    with WebhookReceiver() as hook:
        settings = MonitorSettings(
            window=str(window_rows),
            grace_s=0,
            webhooks=[Webhook.model_validate({"url": hook.url})],
            # The demo's receiver listens on loopback: a webhook may point there only if
            # allowed (VIGIL_MONITOR_ALLOW_PRIVATE_WEBHOOKS), never by default.
            allow_private_webhooks=True,
            backoff_s=0.1,
        )
        result = monitor_once(v, model=MODEL_NAME, settings=settings)
    found: dict[str, Any] = {
        "drifted": [list(w.drift.drifted_columns) if w.drift else [] for w in result.windows],
        "accuracy": [
            w.performance.metrics.get("accuracy") if w.performance else None for w in result.windows
        ],
        "alerts": hook.received,
        "window": window_rows,
    }
    _print_windows(result.windows, console)
    for body in hook.received:
        for alert in body.get("alerts", [body]) if isinstance(body, dict) else []:
            labels_ = alert.get("labels", {})
            annotations = alert.get("annotations", {})
            text = (
                f"{alert.get('status', '')} {labels_.get('alertname', '')}: "
                f"{annotations.get('summary', '')}"
            )
            console.print(f"   [bold red]alert[/] {shown(text)}", highlight=False)
    report = _report(v, console)
    found["report"] = report
    return found


def _print_windows(windows: list[Any], console: Console) -> None:

    rows = []
    for i, w in enumerate(windows, 1):
        drifted = w.drift.drifted_columns if w.drift is not None else []
        accuracy = w.performance.metrics.get("accuracy") if w.performance is not None else None
        rows.append(
            (
                str(i),
                str(w.n_rows),
                f"{len(drifted)} of {len(w.drift.columns)}" if w.drift is not None else "—",
                ", ".join(drifted) or "—",
                f"{accuracy:.3f}" if accuracy is not None else "—",
            )
        )
    table(
        "Monitoring windows (vigil monitor run)",
        ["window", "rows", "drifted", "features that moved", "accuracy"],
        rows,
    )


def _report(v: Any, console: Console) -> Path:
    """Write the HTML drift report of the captured traffic with ``vigil report``."""

    path = Path(v.settings.home) / "reports" / f"{MODEL_NAME}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "VIGIL_HOME": str(v.settings.home),
        "COLUMNS": str(max(console.width, 100)),
    }
    command = ["report", f"models:/{MODEL_NAME}@production", "--since", "1h", "--html", str(path)]
    console.print(f"   [bold]vigil {' '.join(command[:-2])} --html {path.name}[/]")
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo: vigil report failed: {done.stderr.strip()}")
    verdict = done.stdout.rstrip().split("┘")[-1].strip()  # the lines after the table
    console.print(f"   {verdict}", highlight=False, markup=False, soft_wrap=True)
    return path
