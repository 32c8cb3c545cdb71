"""The endpoint page's view on a real home: a split experiment from the inference log and
feedback, a canary from the shared counters, a bandit's arms over time; the numbers are
``vigil experiment status``'s; the actions change the endpoint and are audited."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.experiments._registry import split_endpoint, vigil_with_models
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.capture.settings import CaptureSettings
from vigil.capture.sink import CaptureSink
from vigil.cli import app as cli
from vigil.errors import EndpointNotFoundError, InvalidNameError, ValidationError
from vigil.experiments.config import parse_endpoint
from vigil.experiments.state import SqlPolicyState
from vigil.experiments.status import counts_from_frames, experiment_status
from vigil.experiments.store import EndpointStore
from vigil.feedback.store import FeedbackStore
from vigil.ui.pages.endpoint import ACTIONS, endpoint_view

ROW = {"tenure": 1.0, "plan": "basic"}
T0 = datetime(2025, 5, 1, tzinfo=UTC)


def _canary() -> dict[str, Any]:
    return {
        "name": "ramp",
        "variants": [
            {"name": "stable", "model": "models:/churn@production"},
            {"name": "new", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "canary", "stable": "stable", "canary": "new"},
    }


def _bandit() -> dict[str, Any]:
    return {
        "name": "arms",
        "variants": [
            {"name": "a", "model": "models:/churn/1"},
            {"name": "b", "model": "models:/churn/2"},
        ],
        "policy": {"kind": "thompson"},
    }


@pytest.fixture
def vigil(vigil_home: Path, make_bundle: Callable[..., Path]) -> Iterator[Vigil]:
    reset_default()
    app = vigil_with_models(vigil_home, make_bundle)
    store = EndpointStore(app)
    store.create(
        parse_endpoint(split_endpoint(policy={"kind": "split", "weights": {"a": 1, "b": 1}})),
        actor="ada",
    )
    store.create(parse_endpoint(_canary()), actor="ada")
    store.create(parse_endpoint(_bandit()), actor="ada")
    log = CaptureSink.from_settings(CaptureSettings(), app.settings.home)
    assert log is not None
    rng = np.random.default_rng(3)
    given = []
    for endpoint, variants in (("checkout", ("a", "b")), ("arms", ("a", "b"))):
        for variant, rate in zip(variants, (0.1, 0.2), strict=True):
            for i in range(200):
                rid = f"{endpoint}-{variant}-{i}"
                log.record_prediction(
                    request_id=rid,
                    model="churn",
                    version=1 if variant == "a" else 2,
                    features=[ROW],
                    predictions=[1],
                    endpoint=endpoint,
                    variant=variant,
                    latency_ms=3.0,
                    time=T0 + timedelta(seconds=i),
                )
                given.append({"request_id": rid, "reward": float(rng.random() < rate)})
    log.close()
    FeedbackStore.from_settings(CaptureSettings(), app.settings.home, app.artifacts).submit(given)
    state = SqlPolicyState(app.database)
    state.add("ramp", "stable", requests=900, errors=2, latency_ms=[5.0] * 900)
    state.add("ramp", "new", requests=100, errors=3, latency_ms=[7.0] * 100)
    state.set_control("ramp", {"step": 1, "status": "ramping"}, expected_revision=0)
    state.add("checkout", "a", requests=200)
    state.add("checkout", "b", requests=200)
    yield app
    app.database.dispose()
    reset_default()


def test_split_experiment_shows_what_the_cli_prints(vigil: Vigil) -> None:
    view = endpoint_view(vigil, "checkout")
    assert (view.policy, view.can_update_weights) == ("split", True)
    assert [(v.name, v.resolved, v.weight) for v in view.variants] == [
        ("a", "models:/churn/1", 1.0),
        ("b", "models:/churn/2", 1.0),
    ]
    assert view.experiment == experiment_status(vigil, "checkout")
    printed = CliRunner().invoke(cli, ["experiment", "status", "checkout", "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == json.loads(json.dumps(view.experiment.to_dict()))
    b = view.experiment.variant("b")
    assert b.lift is not None and b.p_value is not None and b.prob_best is not None
    metric, lift = str(view.metric), str(view.lift)
    assert f"{b.value:.4g}" in metric and f"{b.low:.4g}" in metric and f"{b.high:.4g}" in metric
    assert f"{b.lift:+.2%}" in lift
    assert "a 50%, b 50%" in str(view.traffic)  # configured beside the live split
    assert view.canary is None and view.bandit is None


def test_canary_step_and_guards_from_the_live_state(vigil: Vigil) -> None:
    view = endpoint_view(vigil, "ramp")
    c = view.canary
    assert c is not None
    assert (c.step, c.percent, c.status, c.steps) == (1, 25.0, "ramping", [5, 25, 50, 100])
    guards = {g: (limit, canary, stable) for g, limit, canary, stable in c.guards}
    assert guards["error rate increase"] == ("≤ 1.00% points", "3.00%", "0.22%")
    assert guards["requests before judging"] == ("≥ 50", "100", "900")
    assert view.experiment.live is not None and view.experiment.live["step"] == 1
    assert [v.requests for v in view.variants] == [900, 100]


def test_bandit_arms_over_time_end_at_the_status_values(vigil: Vigil) -> None:
    view = endpoint_view(vigil, "arms")
    assert view.bandit is not None and view.can_update_weights is False
    status = experiment_status(vigil, "arms")
    rows = str(view.bandit).split("<tbody>")[1].split("<tr>")[1:]
    assert len(rows) == 12  # POINTS moments
    # The last moment covers every request: its estimates are the status's values.
    for name in ("a", "b"):
        assert f"{status.variant(name).value:.4g}" in rows[-1]


def test_unknown_endpoint(vigil: Vigil) -> None:
    with pytest.raises(EndpointNotFoundError):
        endpoint_view(vigil, "nope")


def _events(vigil: Vigil) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.entity_name) for e in vigil.registry.audit(limit=3)]


def test_actions_change_the_endpoint_and_are_audited(vigil: Vigil) -> None:
    msg = ACTIONS["weights"](vigil, "checkout", {"weight.a": "3", "weight.b": "1"}, "key:k9")
    assert msg == "checkout now splits traffic a 3, b 1"
    config = EndpointStore(vigil).get("checkout")
    assert config.policy.model_dump() == {"kind": "split", "weights": {"a": 3.0, "b": 1.0}}
    assert config.salt == "pepper"
    assert _events(vigil)[0] == ("key:k9", "endpoint.update", "checkout")
    msg = ACTIONS["promote"](vigil, "ramp", {"variant": "new", "confirm": "yes"}, "key:k9")
    assert msg == "churn@production now points at version 2 (variant new)"
    assert vigil.registry.resolve("models:/churn@production").version == 2
    assert _events(vigil)[0] == ("key:k9", "set_alias", "churn@production")
    msg = ACTIONS["conclude"](
        vigil, "checkout", {"variant": "b", "alias": "", "confirm": "yes"}, "key:k9"
    )
    assert msg == "checkout concluded: every request goes to b"
    assert EndpointStore(vigil).get("checkout").policy.model_dump() == {
        "kind": "fixed",
        "variant": "b",
    }
    assert _events(vigil)[0] == ("key:k9", "experiment.conclude", "checkout")


REFUSED: list[tuple[str, str, dict[str, str], type[Exception]]] = [
    ("checkout", "weights", {"weight.a": "-1", "weight.b": "1"}, ValidationError),
    ("checkout", "weights", {"weight.a": "nan", "weight.b": "1"}, ValidationError),
    ("checkout", "weights", {"weight.a": "0", "weight.b": "0"}, ValidationError),
    ("checkout", "weights", {"weight.a": "1"}, ValidationError),
    ("checkout", "weights", {"weight.a": "1", "weight.b": "1", "weight.z": "1"}, ValidationError),
    ("ramp", "weights", {"weight.stable": "1", "weight.new": "1"}, ValidationError),
    ("checkout", "conclude", {"variant": "b"}, ValidationError),  # not confirmed
    ("checkout", "conclude", {"variant": "zz", "confirm": "yes"}, ValidationError),
    ("checkout", "conclude", {"variant": "b", "alias": "../p", "confirm": "yes"}, InvalidNameError),
    ("ramp", "promote", {"variant": "new", "alias": "a b", "confirm": "yes"}, InvalidNameError),
    ("ramp", "promote", {"variant": "new", "x": "1", "confirm": "yes"}, ValidationError),
    ("nope", "conclude", {"variant": "b", "confirm": "yes"}, EndpointNotFoundError),
]


def test_actions_refuse_bad_input_and_change_nothing(vigil: Vigil) -> None:
    # One home for every case: each is refused before anything is written.
    before = (_events(vigil), EndpointStore(vigil).revision("checkout"))
    for endpoint, action, form, error in REFUSED:
        with pytest.raises(error):
            ACTIONS[action](vigil, endpoint, form, "key:k9")
        assert (_events(vigil), EndpointStore(vigil).revision("checkout")) == before, form
    assert vigil.registry.resolve("models:/churn@production").version == 1


def test_bandit_history_reuses_the_status_counts(vigil: Vigil) -> None:
    """The last point of each arm is what counts_from_frames gives on every request."""
    from vigil.capture.reader import read_capture_table

    config = EndpointStore(vigil).get("arms")
    table = read_capture_table(None, store=vigil.artifacts, log_dir=vigil.capture_dir)
    assert table is not None
    store = vigil.feedback_store()
    counts = counts_from_frames(config, table.to_pandas(), store.read())
    store.close()
    text = str(endpoint_view(vigil, "arms").bandit)
    last_row = text.split("<tr>")[-1]
    for name in ("a", "b"):
        assert f"{counts.stats[name].rate:.4g}" in last_row
