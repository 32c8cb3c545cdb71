"""A real home for the console's model and endpoint pages, built once per session.

``churn`` (the monitoring tests' model) has version 1 (``production``) and version 2, two
hourly windows of captured traffic, the second with ``age`` and ``plan`` shifted, and
labels for the first. ``evil`` is a model whose feature names and description are hostile
HTML. Each test gets its own copy of the home (:func:`tests.monitor._data.copied_home`).
Templates render through a stand-in ``base.html`` kept here (the real one belongs to the
console's framework).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from tests.monitor._data import (
    Trained,
    capture_sink,
    copied_home,
    home_vigil,
    make_frame,
    register,
    train,
    write_traffic,
)

from vigil.app import Vigil
from vigil.monitor.engine import monitor_windows
from vigil.monitor.settings import MonitorSettings

T0 = datetime(2025, 3, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=3)
SETTINGS = MonitorSettings(window="1h", rules=[], grace_s=0)
HOSTILE = ['<script>alert("f")</script>', "a&b'\"<i>"]
HOSTILE_TEXT = '<img src=x onerror="alert(1)"> & co'
SRC_TEMPLATES = Path(__file__).parents[3] / "src" / "vigil" / "ui" / "templates"


@dataclass
class Built:
    home: Path
    trained: Trained
    calm_ids: list[str]


def _evil(app: Vigil) -> None:
    """A model whose features are named like markup, and two hours of its traffic."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({HOSTILE[0]: rng.normal(0, 1, 400), HOSTILE[1]: rng.normal(0, 1, 400)})
    frame["y"] = (frame[HOSTILE[0]] > 0).astype(int)
    model = LogisticRegression().fit(frame[HOSTILE], frame["y"])
    app.register(model, name="evil", reference=frame, target="y", alias="production")
    app.registry.update_model("evil", description=HOSTILE_TEXT)
    sink = capture_sink(app)
    for hour, shift in ((0, 0.0), (1, 3.0)):
        part = frame[HOSTILE].iloc[:100] + shift
        for i in range(0, 100, 4):
            rows = part.iloc[i : i + 4].reset_index(drop=True)
            sink.record_prediction(
                request_id=f"evil-{hour}-{i}",
                model="evil",
                version=1,
                features=rows,
                predictions=model.predict(rows),
                time=T0 + timedelta(hours=hour, seconds=10 * i),
            )
    sink.close()


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    trained = train(seed=0)
    home = tmp_path_factory.mktemp("ui-pages") / "home"
    app = home_vigil(home, actor="builder")
    assert register(app, trained) == 1
    v2 = app.register(trained.model, name="churn", reference=trained.reference, target="label")
    assert v2.version == 2
    sink = capture_sink(app)
    calm = make_frame(400, seed=1)
    shifted = make_frame(400, seed=3, shift_age=True, shift_plan=True)
    step = timedelta(seconds=10)
    calm_ids = write_traffic(sink, trained.model, calm, start=T0, step=step, batch=4)
    write_traffic(
        sink, trained.model, shifted, start=T0 + timedelta(hours=1), step=step, batch=4, prefix="s"
    )
    sink.close()
    labels = [
        {"request_id": rid, "row": r, "label": int(calm["label"].iloc[4 * i + r])}
        for i, rid in enumerate(calm_ids)
        for r in range(4)
    ]
    store = app.feedback_store()
    try:
        store.submit(labels)
    finally:
        store.close()
    _evil(app)
    monitor_windows(app, now=NOW, settings=SETTINGS)
    app.database.dispose()
    return Built(home, trained, calm_ids)


@pytest.fixture
def vigil(built: Built, vigil_home: Path) -> Iterator[Vigil]:
    """A private copy of the built home, also the process default."""
    yield from copied_home(built.home, vigil_home)


@pytest.fixture(scope="session")
def templates() -> jinja2.Environment:
    """The pages' templates, with this directory's stand-in ``base.html`` first."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([Path(__file__).parent / "templates", SRC_TEMPLATES]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render(env: jinja2.Environment, name: str, view: Any, *, can_act: bool = True) -> str:
    """A page as the framework renders it: the view plus ``chrome``, ``csrf``, ``prefix``."""
    chrome = SimpleNamespace(
        role="admin" if can_act else "read", can_act=can_act, actor="key:test", auth_off=False
    )
    return env.get_template(name).render(view=view, chrome=chrome, csrf="tok-123", prefix="/ui")
