"""Alert rules over stored series: firing after N windows, resolving, de-duplication."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitor._series import HOUR, T0, store_window

from vigil.audit import read_audit, verify_audit
from vigil.monitor.alerts import evaluate_rules, list_alerts
from vigil.monitor.rules import AlertRule
from vigil.storage.sql import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'alerts.db'}")
    yield database
    database.dispose()


DRIFT_TWICE = AlertRule(
    name="drift_share", metric="drift.share", comparison=">", threshold=0.3, for_windows=2
)


def evaluate(db: Database, *rules: AlertRule) -> list[tuple[str, str, str | None]]:
    events = evaluate_rules(db, rules, since=T0 - HOUR, window="1h")
    return [(e.rule, e.status, e.labels.get("feature")) for e in events]


def test_fires_after_n_breaching_windows_then_resolves(db: Database) -> None:
    store_window(db, 0, {"drift.share": 0.5})
    assert evaluate(db, DRIFT_TWICE) == []  # one breaching window is not two
    store_window(db, 1, {"drift.share": 0.6})
    assert evaluate(db, DRIFT_TWICE) == [("drift_share", "firing", None)]
    assert evaluate(db, DRIFT_TWICE) == []  # still firing: nothing new to say

    (firing,) = list_alerts(db)
    assert firing.starts_at == T0  # the first window of the breaching streak
    assert firing.value == 0.6 and firing.threshold == 0.3
    assert firing.labels == {
        "alertname": "drift_share",
        "severity": "warning",
        "model": "churn",
        "version": "1",
        "route": "native_predict",
    }
    assert firing.summary == "churn v1 (native_predict): drift.share = 0.6 > 0.3"

    store_window(db, 2, {"drift.share": 0.1})
    assert evaluate(db, DRIFT_TWICE) == [("drift_share", "resolved", None)]
    assert list_alerts(db) == []
    history = list_alerts(db, include_resolved=True)
    assert [(e.status, e.starts_at, e.ends_at) for e in history] == [
        ("resolved", T0, T0 + 3 * HOUR),
        ("firing", T0, None),
    ]
    # A new streak fires again, as a new event.
    store_window(db, 3, {"drift.share": 0.4})
    store_window(db, 4, {"drift.share": 0.4})
    assert evaluate(db, DRIFT_TWICE) == [("drift_share", "firing", None)]
    # Each transition is a decision vigil made on its own: in the hash-chained audit, with
    # the numbers behind it.
    with db.session() as session:
        audited = read_audit(session, model_name="churn")
        assert verify_audit(session).ok
    assert [(e.action, e.actor, e.entity_name) for e in audited] == [
        ("alert.firing", "alert-rules", "drift_share"),
        ("alert.resolved", "alert-rules", "drift_share"),
        ("alert.firing", "alert-rules", "drift_share"),
    ]
    assert audited[-1].after is not None
    assert {k: audited[-1].after[k] for k in ("metric", "value", "threshold")} == {
        "metric": "drift.share",
        "value": 0.6,
        "threshold": 0.3,
    }


def test_per_feature_series_and_label_filters(db: Database) -> None:
    values = {("drift.drifted", "age"): 1.0, ("drift.drifted", "plan"): 1.0}
    store_window(db, 0, values)
    store_window(db, 0, values, model="fraud")
    rule = AlertRule(
        name="age_drift",
        metric="drift.drifted",
        comparison=">=",
        threshold=1,
        labels={"feature": "age", "model": "ch*"},
        severity="critical",
    )
    assert evaluate(db, rule) == [("age_drift", "firing", "age")]
    everything = AlertRule(name="any_drift", metric="drift.drifted", comparison="==", threshold=1)
    got = sorted(
        (e.labels["model"], e.labels["feature"])
        for e in evaluate_rules(db, [everything], since=T0 - HOUR, window="1h")
    )
    assert got == [("churn", "age"), ("churn", "plan"), ("fraud", "age"), ("fraud", "plan")]


def test_partial_and_other_window_sizes_are_ignored(db: Database) -> None:
    store_window(db, 0, {"traffic.error_rate": 0.5}, window="15m")
    rule = AlertRule(name="errors", metric="traffic.error_rate", threshold=0.05)
    assert evaluate(db, rule) == []


def test_concurrent_evaluations_write_each_transition_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    setup = Database(url)
    store_window(setup, 0, {"traffic.error_rate": 0.5})
    rule = AlertRule(name="errors", metric="traffic.error_rate", threshold=0.05)
    start = threading.Barrier(4)
    written: list[int] = []
    databases = [Database(url) for _ in range(4)]  # one engine each, like separate workers

    def worker(db: Database) -> None:
        start.wait()
        written.append(len(evaluate_rules(db, [rule], since=T0, window="1h", claim="c")))

    threads = [threading.Thread(target=worker, args=(d,)) for d in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(written) == [0, 0, 0, 1]
    assert len(list_alerts(setup, include_resolved=True)) == 1
    for d in [setup, *databases]:
        d.dispose()


def test_default_rules(db: Database) -> None:
    from vigil.monitor.rules import default_rules

    store_window(
        db,
        0,
        {"drift.dataset": 1.0, "performance.accuracy.delta": -0.08, "traffic.error_rate": 0.01},
    )
    assert sorted(evaluate(db, *default_rules())) == [
        ("accuracy_drop", "firing", None),
        ("dataset_drift", "firing", None),
    ]


def test_default_rules_watch_every_registered_measure(db: Database) -> None:
    """A version registered with AUC and RMSE (not accuracy) is alerted on those: a drop
    of a measure that should stay high (absolute), a rise of an error (relative)."""
    from vigil.monitor.rules import default_rules

    store_window(
        db,
        0,
        {
            "performance.roc_auc.delta": -0.12,
            "performance.f1.delta": -0.01,  # within 0.05 of its registered value
            "performance.rmse.change": 0.35,
            "performance.mae.change": 0.1,  # 10 % worse: below the 20 % default
        },
    )
    assert sorted(evaluate(db, *default_rules())) == [
        ("rmse_rise", "firing", None),
        ("roc_auc_drop", "firing", None),
    ]
