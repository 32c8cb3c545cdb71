"""Fairness from mergeable summaries: per-group counts built in one pass over Arrow
batches equal the rows path's (they are counts) at 50,000 rows, for a feature, a
passthrough field and a field of feedback; merging is associative and commutative, also
past the cap of groups; and the engine's whole-hour windows carry the same fairness
series as windows read raw."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tests.monitor._data import Trained, make_frame
from tests.monitor.test_summaries_engine import ON, T0, big  # noqa: F401 (a fixture)

from vigil.app import Vigil
from vigil.capture.reader import read_capture
from vigil.monitor.baseline import load_baseline
from vigil.monitor.engine import monitor_windows
from vigil.monitor.fairness import ModelFairness
from vigil.monitor.group_fairness import fairness_points, measure_fairness
from vigil.monitor.measure import labelled_rows, measure_window
from vigil.monitor.settings import MonitorSettings
from vigil.monitor.summaries.build import summarise
from vigil.monitor.summaries.groups import GROUP_CAP, GroupSummary
from vigil.monitor.summaries.window import Anchors, WindowSummary, merge_all
from vigil.monitor.windows import parse_window, split_windows
from vigil.stats.fairness import GroupCounts, count_groups

N = 50_000
CONFIG = ModelFairness.model_validate(
    {
        "attributes": [
            "plan",
            {"name": "region", "source": "passthrough"},
            {"name": "band", "source": "feedback"},
        ],
        "positive_label": 1,
        "min_group_size": 30,
    }
)
ANCHORS = Anchors(
    features={}, task="classification", classes=("0", "1"), fairness=CONFIG, positive="1"
)


def _log_and_feedback() -> tuple[pa.Table, pd.DataFrame]:
    """50,000 logged rows over three hours (5 rows a request) with a plan, a region (with
    gaps) and a prediction tied to both; feedback on 60 % of them, most with a band."""
    rng = np.random.default_rng(42)
    plan = rng.choice(["basic", "pro", "team", "free"], N, p=[0.5, 0.3, 0.1996, 0.0004])
    region = rng.choice(["north", "south", "islands", None], N, p=[0.5, 0.4, 0.02, 0.08])
    lift = (plan == "pro") * 0.3 + (region == "south") * 0.2
    prediction = (rng.random(N) < 0.3 + lift).astype(np.int64)
    times = [T0 + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 3 * 3600, N))]
    table = pa.table(
        {
            "request_id": [f"r{i // 5:06d}" for i in range(N)],
            "row": pa.array(np.arange(N) % 5, pa.int64()),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "model": ["churn"] * N,
            "version": pa.array(np.ones(N, dtype=np.int64)),
            "route": ["native_predict"] * N,
            "status": pa.array(np.full(N, 200), pa.int64()),
            "prediction": pa.array(prediction),
            "feature.plan": plan,
            "passthrough.region": region,
        }
    )
    told = np.flatnonzero(rng.random(N) < 0.6)
    truth = (rng.random(told.size) < 0.25 + lift[told]).astype(np.int64)
    band = rng.choice(["a", "b", None], told.size, p=[0.45, 0.45, 0.1])
    feedback = pd.DataFrame(
        {
            "request_id": [f"r{i // 5:06d}" for i in told],
            "row": told % 5,
            "caller": None,
            "label": truth,
            "time": pd.Timestamp(T0 + timedelta(days=1)),
            "field.band": band,
        }
    )
    return table, feedback


def _summaries(table: pa.Table, feedback: pd.DataFrame, chunk: int) -> list[WindowSummary]:
    return summarise(
        table.to_batches(chunk), lambda m, v: ANCHORS, features=[], groups_from=feedback
    )


def test_counts_from_summaries_equal_the_rows_path_at_50k_rows() -> None:
    table, feedback = _log_and_feedback()
    rows = table.to_pandas()
    notes: list[str] = []
    want = measure_fairness(
        rows, labelled_rows(rows, feedback), CONFIG, [0, 1], notes, feedback=feedback
    )
    built = _summaries(table, feedback, 7_000)
    assert len(built) == 3  # one per hour
    merged = merge_all(built)
    assert merged is not None and merged.groups is not None
    said: list[str] = []
    got = merged.groups.reports(["plan", "region", "band"], CONFIG.min_group_size, said)
    assert said == [n for n in notes if "rows without a" in n] and len(said) == 2
    assert got.keys() == want.keys() == {"plan", "region", "band"}
    for attribute, report in want.items():
        assert {g: r.counts for g, r in got[attribute].groups.items()} == {
            g: r.counts for g, r in report.groups.items()
        }
        assert got[attribute].between == report.between  # the same counts: equal floats
    # The rows path compares groups that matter: the tiny "free" plan is flagged small.
    assert want["plan"].groups["free"].small and want["plan"].between["small_groups"] == 1
    labelled = sum(r.counts.labelled for r in got["band"].groups.values())
    assert 0 < labelled < sum(r.counts.n for r in got["band"].groups.values()) + 1
    points = fairness_points(got, CONFIG, [])
    assert {p.metric: p.value for p in points} == {
        p.metric: p.value for p in fairness_points(want, CONFIG, [])
    }


def _merged(parts: list[WindowSummary], order: list[int], nest: bool) -> dict[str, Any]:
    copies = [WindowSummary.from_dict(parts[i].to_dict()) for i in order]
    if nest:  # a + (b + c + ...)
        tail = merge_all(copies[1:])
        assert tail is not None
        out = copies[0].merge(tail)
    else:  # ((a + b) + c) + ...
        out = copies[0]
        for c in copies[1:]:
            out.merge(c)
    assert out.groups is not None
    return out.groups.to_dict()


def test_merging_is_associative_and_commutative() -> None:
    table, feedback = _log_and_feedback()
    hour = _summaries(table.slice(0, 15_000), feedback, 1_000)
    # The same rows summarised in three pieces, merged in several groupings and orders.
    pieces = [
        s
        for lo, hi in ((0, 4_000), (4_000, 9_000), (9_000, 15_000))
        for s in _summaries(table.slice(lo, hi - lo), feedback, 1_000)
    ]
    whole = merge_all(hour)
    assert whole is not None and whole.groups is not None
    expected = whole.groups.to_dict()
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        for nest in (False, True):
            indices = [i for i in range(len(pieces)) if i % 3 == order[0]]
            indices += [i for i in range(len(pieces)) if i % 3 == order[1]]
            indices += [i for i in range(len(pieces)) if i % 3 == order[2]]
            assert _merged(pieces, indices, nest) == expected


def test_groups_past_the_cap_are_other_in_any_merge_order() -> None:
    rng = np.random.default_rng(9)
    n = 4_000
    groups = [f"g{v:04d}" for v in rng.integers(0, GROUP_CAP + 150, n)]
    selected = (rng.random(n) < 0.4).tolist()
    cuts = [0, 700, 1_900, 2_500, n]
    parts = []
    for lo, hi in itertools.pairwise(cuts):
        s = GroupSummary()
        s.update_rows("id", groups[lo:hi], selected[lo:hi])
        parts.append(s)
    exact = count_groups(groups, selected)
    kept = sorted(exact)[:GROUP_CAP]
    rest = sum((exact[g] for g in sorted(exact)[GROUP_CAP:]), GroupCounts())
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        out = GroupSummary.from_dict(parts[order[0]].to_dict())
        for i in order[1:]:
            out.merge(GroupSummary.from_dict(parts[i].to_dict()))
        assert out.counts["id"] == {g: exact[g] for g in kept}
        assert out.other["id"] == rest
    (pair_a, pair_b) = (GroupSummary(), GroupSummary())
    pair_a.merge(parts[0]).merge(parts[1])
    pair_b.merge(parts[2]).merge(parts[3])
    assert pair_a.merge(pair_b).to_dict() == out.to_dict()
    notes: list[str] = []
    out.reports(["id"], 1, notes)
    assert notes and f"{rest.n} rows of groups past the first {GROUP_CAP}" in notes[0]


def test_hour_windows_from_summaries_carry_the_raw_fairness(
    big: Vigil,  # noqa: F811 (the imported fixture)
    trained: Trained,
) -> None:
    fairness = {"big": {"attributes": ["plan"], "positive_label": 1, "min_group_size": 30}}
    settings = MonitorSettings(window="1h", rules=[], grace_s=0, fairness=fairness)
    assert settings.summaries and ON.summaries
    frame = make_frame(3000, seed=3, shift_age=True, shift_plan=True)
    labels = [
        {"request_id": f"b{i // 10:06d}", "row": i % 10, "label": int(frame["label"].iloc[i])}
        for i in range(0, 3000, 3)
    ]
    store = big.feedback_store()
    assert store.submit(labels).accepted == 1000
    store.close()
    now = T0 + timedelta(hours=4)
    done = monitor_windows(big, model="big", now=now, settings=settings)
    assert [r.start for r in done.results] == [T0 + timedelta(hours=h) for h in range(3)]
    rows = read_capture("big", store=big.artifacts, log_dir=big.capture_dir)
    baseline = load_baseline(big, "big", 1, settings.fairness["big"])
    windows = split_windows(rows, parse_window("1h"), now=now)
    for got, window in zip(done.results, windows, strict=True):
        want = measure_window(window, baseline, pd.DataFrame(labels))
        assert not any("no fairness" in n for n in got.notes), got.notes
        fair = {p.metric: p.value for p in want.points if p.metric.startswith("fairness.")}
        assert "fairness.plan.demographic_parity_difference" in fair
        assert {p.metric: p.value for p in got.points if p.metric.startswith("fairness.")} == fair
    labelled = done.results[1].fairness  # the hour with labels: rates of labelled rows too
    assert labelled is not None and labelled["plan"].groups["pro"].counts.labelled > 0
    assert labelled["plan"].groups["pro"].values["tpr"] is not None
