"""The main job, end to end on the embedded default: ``make demo`` / ``vigil demo``.

Trains a classifier on a data set scikit-learn ships (no download), registers it with its
reference data and the ``production`` alias, loads it back through its model URI and
checks it predicts exactly what the trained object predicts. Then it serves the model with
``vigil serve`` on a free loopback port and sends it traffic through every protocol.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

from vigil._redact import redact_url
from vigil.demo._data import MODEL_NAME, train


def run_demo(home: str | None = None, console: Console | None = None) -> dict[str, Any]:
    """Run the demo; returns what it registered (for tests)."""
    import numpy as np

    from vigil.app import Vigil
    from vigil.settings import load_settings

    console = console or Console()
    settings = load_settings(home=Path(home)) if home else load_settings()
    v = Vigil(settings)
    console.print(Rule("vigil demo"))
    database = redact_url(settings.resolved_database_url)
    console.print(f"home: [bold]{settings.home}[/]  database: {database}", highlight=False)

    console.print("1. training a LogisticRegression on scikit-learn's breast-cancer data set")
    model, reference, holdout, holdout_y, metrics = train()
    console.print(
        f"   holdout accuracy {metrics['accuracy']:.3f}, ROC AUC {metrics['roc_auc']:.3f}"
    )

    console.print("2. registering it with its reference data and the 'production' alias")
    mv = v.register(
        model,
        name=MODEL_NAME,
        reference=reference,
        target="target",
        alias="production",
        metrics=metrics,
        tags={"dataset": "sklearn.breast_cancer", "owner": "demo"},
        description="LogisticRegression on the Wisconsin breast-cancer data",
    )
    console.print(
        f"   registered [bold]models:/{mv.name}/{mv.version}[/] ({mv.flavor}, sha256 {mv.sha256[:12]})"
    )

    console.print("3. loading models:/breast-cancer@production back and predicting")
    bundle = v.load(f"models:/{MODEL_NAME}@production")
    rows = holdout.head(5)
    ours = bundle.predict(rows)
    theirs = model.predict(rows)
    same = bool(np.array_equal(ours, theirs))
    console.print(f"   predictions {ours.tolist()} — identical to the trained object: {same}")
    if not same:
        raise SystemExit("demo: the loaded model predicts differently from the trained one")

    _show(v, bundle, console)

    from vigil.demo._server import DemoServer
    from vigil.demo.serving import serve_traffic

    console.print("4. serving it with [bold]vigil serve[/] and calling it through each protocol")
    from vigil.demo.monitoring import watch

    # Monitoring runs on demand below, so the server's own schedule stays out of the way.
    with DemoServer(settings.home, env={"VIGIL_MONITOR_ENABLED": "false"}) as server:
        console.print(f"   serving at [bold]{server.url}[/] (log: {server.log_path})")
        sample = holdout.head(3)
        serve_traffic(server.url, sample, model.predict(sample).tolist(), console)

        console.print("5. watching it: normal then shifted traffic, labels, monitoring, alerts")
        found = watch(v, server.url, holdout, holdout_y, reference, console)

        from vigil.demo.experiment import register_challenger, run_experiment

        console.print("6. an A/B experiment: production against a challenger, rewards as feedback")
        register_challenger(v, reference, console)
        served = run_experiment(v, server.url, holdout, console)
    console.print(
        "   (the demo stops this server as it ends; [bold]vigil serve[/] serves the production "
        "alias on http://127.0.0.1:8000)"
    )
    console.print(Rule())
    console.print(
        "next: [bold]vigil model list[/], [bold]vigil model show models:/breast-cancer@production[/], [bold]vigil audit[/]"
    )
    if "VIGIL_HOME" not in os.environ and home is None:
        console.print(f"(state lives in {settings.home}; set VIGIL_HOME to use another place)")
    return {
        "name": mv.name,
        "version": mv.version,
        "identical": same,
        "monitoring": found,
        "experiment": served,
    }


def _show(v: Any, bundle: Any, console: Console) -> None:
    from vigil.console import table, when

    versions = v.registry.list_versions(MODEL_NAME)
    table(
        f"Versions of {MODEL_NAME}",
        ["version", "flavor", "aliases", "sha256", "created", "by"],
        [
            (
                x.version,
                x.flavor,
                ", ".join(x.aliases),
                x.sha256[:12],
                when(x.created_at),
                x.created_by,
            )
            for x in versions
        ],
    )
    profile = bundle.profile
    if profile is None:
        return
    rows = []
    for name, fp in list(profile.features.items())[:6]:
        if fp.kind == "numeric":
            rows.append(
                (
                    name,
                    "numeric",
                    f"{fp.mean:.3g}",
                    f"{fp.std:.3g}",
                    f"{fp.min:.3g} … {fp.max:.3g}",
                    f"{fp.missing_rate:.1%}",
                )
            )
        else:
            rows.append(
                (name, "categorical", "", "", f"{fp.n_unique} categories", f"{fp.missing_rate:.1%}")
            )
    table(
        f"Baseline profile ({profile.n_rows} reference rows, {len(profile.features)} features; first 6)",
        ["feature", "kind", "mean", "std", "range", "missing"],
        rows,
    )
    if profile.prediction is not None and profile.prediction.kind == "categorical":
        freq = profile.prediction.frequencies
        total = sum(freq.values()) or 1
        console.print(
            "prediction distribution on the reference: "
            + ", ".join(f"class {k}: {c / total:.1%}" for k, c in sorted(freq.items()))
        )
