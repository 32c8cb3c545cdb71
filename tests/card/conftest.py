"""A home holding the demo's model with everything a model card shows.

The demo's model (:func:`vigil.demo._data.train`, registered as ``vigil demo`` registers
it, with its card facts), two hours of captured traffic, calm then shifted as the demo
shifts it, monitored by ``vigil monitor run`` (two windows, a drift alert), a challenger
version, an alias promoted and rolled back, and an A/B endpoint over both. The fairness
series (``fairness.<attribute>...``) are written into the monitoring store directly, as
the fairness monitoring stores them, on the windows monitoring computed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.monitor._data import copied_home, point_of
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default

RULES = """\
monitor:
  rules:
    - name: drift_share
      metric: drift.share
      comparison: ">="
      threshold: 0.2
      for_windows: 1
      severity: warning
      summary: "{model} v{version}: a share {value} of the features drifted"
"""

FAIRNESS = {
    "fairness.size.demographic_parity_difference": 0.12,
    "fairness.size.disparate_impact_ratio": 0.81,
    "fairness.size.small.selection_rate": 0.52,
    "fairness.size.large.selection_rate": 0.64,
    "fairness.size.small.accuracy": 0.95,
    "fairness.size.large.accuracy": 0.97,
}


def _traffic(v: Vigil, model: object, rows: object, start: object, prefix: str) -> None:
    from vigil.capture.log import SegmentLog
    from vigil.capture.sink import CaptureSink

    sink = CaptureSink(SegmentLog(v.capture_dir))
    predictions = model.predict(rows)  # type: ignore[attr-defined]
    probabilities = model.predict_proba(rows)  # type: ignore[attr-defined]
    for i, lo in enumerate(range(0, len(rows), 3)):  # type: ignore[arg-type]
        sink.record_prediction(
            request_id=f"{prefix}{i:05d}",
            model="breast-cancer",
            version=1,
            features=rows.iloc[lo : lo + 3].reset_index(drop=True),  # type: ignore[attr-defined]
            predictions=predictions[lo : lo + 3],
            probabilities=probabilities[lo : lo + 3],
            classes=[0, 1],
            route="native_predict",
            time=start + timedelta(seconds=10 * i),  # type: ignore[operator]
        )
    sink.close()


@pytest.fixture(scope="session")
def demo_card_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sqlalchemy import select

    from vigil.cli import app
    from vigil.demo._data import CARD, MODEL_NAME, train
    from vigil.demo.monitoring import shift
    from vigil.experiments.config import parse_endpoint
    from vigil.experiments.store import EndpointStore
    from vigil.monitor.tables import MonitorWindowRow
    from vigil.monitor.windows import parse_window
    from vigil.settings import load_settings
    from vigil.storage.sql import utcnow

    home = tmp_path_factory.mktemp("card-template") / "home"
    home.mkdir()
    # The demo alerts on accuracy once labels arrive; here a rule on the share of drifted
    # features fires on the shifted window without them.
    (home / "vigil.yaml").write_text(RULES, encoding="utf-8")
    v = Vigil(load_settings(home=home, actor="reviewer"))
    model, reference, holdout, _, metrics = train()
    v.register(
        model,
        name=MODEL_NAME,
        reference=reference,
        target="target",
        alias="production",
        metrics=metrics,
        tags={"dataset": "sklearn.breast_cancer"},
        description="LogisticRegression on the Wisconsin breast-cancer data",
        card=CARD,
    )
    start, _ = parse_window("1h").bounds(utcnow() - timedelta(hours=4))
    _traffic(v, model, holdout, start, "calm")
    _traffic(v, model, shift(holdout, reference), start + timedelta(hours=1), "shift")
    reset_default()
    result = CliRunner().invoke(
        app,
        ["monitor", "run", MODEL_NAME],
        env={"VIGIL_HOME": str(home), "VIGIL_CONFIG": str(home / "vigil.yaml")},
    )
    reset_default()
    assert result.exit_code == 0, result.output
    assert "drift_share" in result.output

    with v.database.session(write=True) as session:
        windows = session.scalars(select(MonitorWindowRow).order_by(MonitorWindowRow.id)).all()
        assert len(windows) == 2
        for k, w in enumerate(windows):
            for metric, value in FAIRNESS.items():
                session.add(point_of(w, metric, value + 0.01 * k))

    v.register(model, name=MODEL_NAME, reference=reference, target="target", alias="challenger")
    v.registry.set_alias(MODEL_NAME, "production", 2, reason="try the challenger")
    v.registry.rollback(MODEL_NAME, "production", reason="back to version 1")
    EndpointStore(v).create(
        parse_endpoint(
            {
                "name": "screening",
                "variants": [
                    {"name": "a", "model": "models:/breast-cancer@production"},
                    {"name": "b", "model": "models:/breast-cancer@challenger"},
                ],
                "policy": {"kind": "split", "weights": {"a": 50, "b": 50}},
            }
        ),
        actor="tester",
    )
    v.database.dispose()
    return home


@pytest.fixture
def demo_vigil(demo_card_home: Path, vigil_home: Path) -> Iterator[Vigil]:
    """A private copy of the demo card home, also the process default."""
    yield from copied_home(demo_card_home, vigil_home)
