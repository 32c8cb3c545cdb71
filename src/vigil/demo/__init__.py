"""The main job, end to end on the embedded default: ``make demo`` / ``vigil demo``.

Trains a classifier on a data set scikit-learn ships (no download), registers it with its
reference data and the ``production`` alias, loads it back through its model URI and
checks it predicts exactly what the trained object predicts. Then it serves the model with
``vigil serve`` on a free loopback port and sends it traffic through every protocol, watches
it drift (:mod:`vigil.demo.monitoring`), lets the alert start an update policy's run that
retrains, gates, shadows, ramps and promotes a candidate (:mod:`vigil.demo.loop`), and ends
with an A/B experiment (:mod:`vigil.demo.experiment`).

It runs in a home of its own (:mod:`vigil.demo._home`, ``./vigil-demo`` by default), emptied
at the start of every run, so every run tells the same story and the user's ``VIGIL_HOME``
is never touched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.rule import Rule

from vigil._redact import redact_url
from vigil.app import Vigil
from vigil.console import table, when
from vigil.demo import _home
from vigil.demo._data import CARD, MODEL_NAME, train
from vigil.demo._server import DemoServer
from vigil.demo.loop import follow, set_policy
from vigil.demo.monitoring import shift, watch
from vigil.demo.serving import serve_traffic
from vigil.settings import load_settings


def run_demo(
    home: str | Path | None = None,
    console: Console | None = None,
    *,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Run the demo in ``home`` (default ``./vigil-demo``), emptied first; returns what it
    registered (for tests). ``database_url`` puts its metadata in that database instead of
    the home's SQLite file (which the demo cannot empty: use a new database)."""
    # Prose is never folded (a pipe or a file keeps whole lines); tables and rules take the
    # terminal's width, or 100 columns for a pipe.
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    console = console or Console(soft_wrap=True, width=100 if piped else None)
    where = _home.prepare(Path(home) if home is not None else _home.DEFAULT)
    with _home.environment(where, database_url):
        return _run(console, database_url is not None)


def _run(console: Console, outside_database: bool) -> dict[str, Any]:

    settings = load_settings()
    v = Vigil(settings)
    console.print(Rule("vigil demo"))
    database = redact_url(settings.resolved_database_url)
    console.print(
        f"home: [bold]{settings.home}[/] (the demo's own, emptied on every run; your "
        f"VIGIL_HOME is not used)  database: {database}",
        highlight=False,
        soft_wrap=True,
    )
    if outside_database:
        console.print(
            "   (an outside database is not emptied: numbers mix with earlier runs' unless it "
            "is new)"
        )

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
        card=CARD,
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

    console.print("4. serving it with [bold]vigil serve[/] and calling it through each protocol")

    # Monitoring runs on demand below, so the server's own schedule stays out of the way;
    # the policy loop looks often, so the update policy's run moves as soon as it may.
    env = {"VIGIL_MONITOR_ENABLED": "false", "VIGIL_POLICY_INTERVAL_S": "0.3"}
    with DemoServer(settings.home, env=env) as server:
        console.print(
            f"   serving at [bold]{server.url}[/] (log: {server.log_path})", soft_wrap=True
        )
        sample = holdout.head(3)
        serve_traffic(server.url, sample, model.predict(sample).tolist(), console)

        console.print("5. watching it: normal then shifted traffic, labels, monitoring, alerts")
        # Set before the traffic shifts: only alerts raised after a policy is set start it.
        set_policy(v, console)
        found = watch(v, server.url, holdout, holdout_y, reference, console)

        console.print(
            "6. the loop: the alert starts the update policy's run, retrained on the "
            "exported traffic, gated, shadowed, ramped as a canary"
        )
        loop = follow(v, server.url, shift(holdout, reference), console)
        _show_versions(v)

        from vigil.demo.experiment import register_challenger, run_experiment

        console.print("7. an A/B experiment: production against a challenger, rewards as feedback")
        register_challenger(v, reference, console)
        served = run_experiment(v, server.url, holdout, console)
    console.print(
        "   (the demo stops this server as it ends; [bold]vigil serve[/] serves the production "
        "alias on http://127.0.0.1:8000)",
        soft_wrap=True,
    )
    console.print(Rule())
    _next_steps(settings.home, found["window"], console)
    return {
        "name": mv.name,
        "version": mv.version,
        "identical": same,
        "monitoring": found,
        "loop": loop,
        "experiment": served,
    }


CONSOLE_URL = "http://127.0.0.1:8000/ui"
"""Where ``vigil serve`` (its default address) serves the web console."""


def next_commands(window: int) -> list[str]:
    """The commands the demo suggests at its end (tests/test_demo.py runs each of them);
    ``window`` is the size of the count windows it monitored."""
    return [
        "model list",
        f"model show models:/{MODEL_NAME}@production",
        f"monitor show {MODEL_NAME} --window {window}",
        "alert list",
        f"policy status {MODEL_NAME}",
        f"audit {MODEL_NAME}",
        f"card models:/{MODEL_NAME}/1",
    ]


def _next_steps(home: Path, window: int, console: Console) -> None:
    """What to run next, written so it works when pasted: the demo's home and the full
    path of ``vigil`` when it is not on the PATH."""
    vigil = _home.vigil_command()
    console.print(f"next, look around what the demo left in {home}:", highlight=False)
    console.print(f"  export VIGIL_HOME={home}", highlight=False, markup=False, soft_wrap=True)
    for command in next_commands(window):
        console.print(f"  {vigil} {command}", highlight=False, markup=False, soft_wrap=True)
    hint = _home.activate_hint()
    if hint is not None:
        console.print(f"({hint})", highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"the web console: run `{vigil} serve` (with that VIGIL_HOME) and open "
        f"{CONSOLE_URL}. On this loopback address authentication is off, so there is no "
        "sign-in and every page says so; on a server with VIGIL_SERVE_AUTH=on, sign in "
        f"there with a read or admin API key (`{vigil} key create --role admin` prints one).",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _show_versions(v: Any) -> None:

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


def _show(v: Any, bundle: Any, console: Console) -> None:

    _show_versions(v)
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
