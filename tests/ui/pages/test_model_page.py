"""The model page's view on a real home: versions, aliases, the drift heatmap and its
drill-down, quality, performance, importance; and its audited actions."""

from __future__ import annotations

import pytest
from tests.monitor._data import point_of
from tests.ui.pages.conftest import HOSTILE, Built

from vigil.app import Vigil
from vigil.errors import ConflictError, InvalidNameError, NotFoundError, ValidationError
from vigil.monitor.series import read_series
from vigil.report.capture_report import capture_report
from vigil.ui.pages.model import ACTIONS, model_view


def test_versions_aliases_and_importance(vigil: Vigil) -> None:
    view = model_view(vigil, "churn")
    assert [v.version for v in view.versions] == [2, 1]
    assert view.current_version == 1  # production's version
    registered = vigil.registry.get_version("churn", 1)
    v1 = view.versions[1]
    assert v1.metrics == registered.metrics and v1.aliases == ["production"]
    assert [n for n, _ in v1.inputs] == ["age", "income", "plan"]
    assert v1.lineage == registered.lineage
    [alias] = view.aliases
    assert (alias.alias, alias.version) == ("production", 1)
    assert [e.to_version for e in alias.history] == [1]
    assert view.importance is not None
    for feature in registered.manifest["importance"]["features"]:
        assert f'<th scope="row">{feature}</th>' in str(view.importance)
    assert len(view.profile) == 3  # one chart per profiled feature
    assert len(model_view(vigil, "churn", versions=1).versions) == 1


def test_heatmap_holds_what_monitoring_stored(vigil: Vigil) -> None:
    view = model_view(vigil, "churn")
    m = view.monitoring
    assert m.setting == "1h" and len(m.windows) == 2 and m.features == ["age", "income", "plan"]
    assert sorted(m.drifted_latest) == ["age", "plan"]
    stored = read_series(vigil.database, model="churn", metrics=["drift.p_value", "drift.drifted"])
    assert len(stored) == 2 * 2 * 3
    for p in stored:
        window = m.window_ids[0 if p.window_start.hour == 0 else 1]
        assert m.values[(window, p.metric, p.feature or "")] == p.value
    heat = str(m.heatmap)
    assert heat.count('class="cell"') == len(m.features) * len(m.windows)
    assert heat.count("drifted, p") == 2 * 2  # in the picture and in the table
    # Performance from the labelled first window; estimated performance from CBPE.
    assert m.performance is not None and "accuracy" in str(m.performance)
    assert m.values[(m.window_ids[0], "performance.accuracy", "")] == pytest.approx(
        read_series(vigil.database, model="churn", metrics=["performance.accuracy"])[0].value
    )
    assert m.estimated is not None
    assert m.fairness == []  # no fairness series stored: nothing shown
    assert len(model_view(vigil, "churn", windows=1).monitoring.windows) == 1


def test_drill_down_draws_what_vigil_report_computes(vigil: Vigil) -> None:
    m = model_view(vigil, "churn").monitoring
    window = m.window_ids[1]
    view = model_view(vigil, "churn", feature="age", window=str(window))
    assert view.drill is not None and view.drill.drifted is True
    assert view.drill.p_value == m.values[(window, "drift.p_value", "age")]
    rows = read_series(vigil.database, model="churn", metrics=["drift.p_value"])
    start = max(p.window_start for p in rows)
    report = capture_report(vigil, "models:/churn/1", since=start, until=start.replace(hour=2))
    current = report.current_summary["age"]
    assert current.n == 400
    for share in current.proportions:
        assert f"{share:.2%}" in str(view.drill.chart)


def test_fairness_series_are_shown_when_present(vigil: Vigil) -> None:
    from vigil.monitor.tables import MonitorWindowRow

    with vigil.database.session(write=True) as s:
        for w in s.query(MonitorWindowRow).filter_by(model="churn"):
            for name, value in (
                ("fairness.plan.demographic_parity_difference", 0.1),
                ("fairness.plan.basic.selection_rate", 0.4),
                ("fairness.plan.pro.selection_rate", 0.6),
            ):
                s.add(point_of(w, name, value))
    charts = model_view(vigil, "churn").monitoring.fairness
    text = "".join(map(str, charts))
    assert len(charts) == 2 and "selection_rate by plan" in text and "pro" in text


def test_unknown_model_and_bad_drill_down(vigil: Vigil) -> None:
    with pytest.raises(NotFoundError):
        model_view(vigil, "nope")
    with pytest.raises(ValidationError):
        model_view(vigil, "churn", feature="age", window="x1")
    with pytest.raises(ValidationError):
        model_view(vigil, "churn", feature="age")
    with pytest.raises(NotFoundError):
        model_view(vigil, "churn", feature="age", window="999999")
    evil_window = model_view(vigil, "evil").monitoring.window_ids[0]
    with pytest.raises(NotFoundError):  # another model's window
        model_view(vigil, "churn", feature="age", window=str(evil_window))
    window = model_view(vigil, "churn").monitoring.window_ids[0]
    with pytest.raises(NotFoundError):
        model_view(vigil, "churn", feature="nope", window=str(window))


def test_hostile_feature_names_reach_the_view_unchanged(vigil: Vigil) -> None:
    view = model_view(vigil, "evil")
    assert view.monitoring.features == sorted(HOSTILE)
    window = view.monitoring.window_ids[1]
    drill = model_view(vigil, "evil", feature=HOSTILE[0], window=str(window)).drill
    assert drill is not None and drill.feature == HOSTILE[0]
    assert "<script>" not in str(drill.chart)


def _audit(vigil: Vigil) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.entity_name) for e in vigil.registry.audit("churn", limit=5)]


def test_actions_change_the_registry_and_are_audited(vigil: Vigil, built: Built) -> None:
    msg = ACTIONS["promote"](
        vigil, "churn", {"version": "2", "alias": "production", "confirm": "yes"}, "key:k1"
    )
    assert msg == "churn@production now points at version 2"
    assert vigil.registry.get_model("churn").aliases["production"] == 2
    assert _audit(vigil)[0] == ("key:k1", "set_alias", "churn@production")
    msg = ACTIONS["rollback"](vigil, "churn", {"alias": "production", "confirm": "yes"}, "key:k1")
    assert msg == "churn@production rolled back from version 2 to version 1"
    assert _audit(vigil)[0] == ("key:k1", "rollback", "churn@production")
    history = model_view(vigil, "churn").aliases[0].history
    assert [(e.action, e.actor) for e in history[:2]] == [("rollback", "key:k1"), ("set", "key:k1")]
    ACTIONS["archive"](
        vigil, "churn", {"version": "2", "reason": "old", "confirm": "yes"}, "key:k1"
    )
    assert vigil.registry.get_version("churn", 2).archived_at is not None
    assert _audit(vigil)[0] == ("key:k1", "archive_version", "churn/2")
    ACTIONS["unarchive"](vigil, "churn", {"version": "2", "confirm": "yes"}, "key:k1")
    assert vigil.registry.get_version("churn", 2).archived_at is None


REFUSED: list[tuple[str, dict[str, str], type[Exception]]] = [
    ("promote", {"version": "2"}, ValidationError),  # not confirmed
    ("promote", {"version": "two", "confirm": "yes"}, ValidationError),
    ("promote", {"version": "0", "confirm": "yes"}, ValidationError),
    ("promote", {"version": "2", "alias": "../x", "confirm": "yes"}, InvalidNameError),
    ("promote", {"version": "2", "confirm": "yes", "evil": "1"}, ValidationError),
    ("promote", {"version": "9", "confirm": "yes"}, NotFoundError),
    ("rollback", {"alias": "production", "confirm": "yes"}, ConflictError),  # no history
    ("archive", {"version": "1", "confirm": "yes"}, ConflictError),  # production's
    ("archive", {"version": "2", "reason": "x" * 1001, "confirm": "yes"}, ValidationError),
]


def test_actions_refuse_bad_input_and_change_nothing(vigil: Vigil) -> None:
    # One home for every case: each is refused before anything is written.
    before = _audit(vigil)
    for action, form, error in REFUSED:
        with pytest.raises(error):
            ACTIONS[action](vigil, "churn", form, "key:k1")
        assert _audit(vigil) == before, form
    assert vigil.registry.get_model("churn").aliases == {"production": 1}
