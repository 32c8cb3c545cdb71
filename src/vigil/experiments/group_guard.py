"""The canary's fairness guard: no group may lose more than a margin of accuracy.

A model whose sensitive attributes are declared for monitoring (``monitor.fairness``,
:mod:`vigil.monitor.fairness`) can be guarded group by group during a canary: with
``guards.max_group_accuracy_drop`` set, the canary is rolled back as soon as, in some
group of some attribute where both variants have ``guards.min_group_labels`` labelled
rows since the ramp started, the stable variant's accuracy exceeds the canary's by more
than the margin. A canary better on average but worse for one group is caught.

The counts come from the inference log (the rows each variant answered for the endpoint
since the ramp started, with their feature or passthrough attribute) joined with their
labels, read at most every :data:`REFRESH_S` seconds per controller: the ramp's own
traffic, not the whole log. :func:`group_breach` judges them (pure).

>>> counts = {"stable": {("sex", "f"): (100, 90), ("sex", "m"): (100, 88)},
...           "canary": {("sex", "f"): (100, 70), ("sex", "m"): (100, 92)}}
>>> reason, evidence = group_breach(counts, "stable", "canary", margin=0.1, min_labels=30)
>>> reason
'canary accuracy for sex=f is 0.7, below the stable 0.9 by more than 0.1'
>>> round(evidence["worst_group_accuracy_drop"], 2)
0.2
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vigil.monitor.performance import label_key

if TYPE_CHECKING:
    import pandas as pd

    from vigil.experiments.services import ExperimentServices
    from vigil.monitor.fairness import ModelFairness

__all__ = ["REFRESH_S", "GroupAccuracy", "group_breach", "read_group_accuracy"]

log = logging.getLogger("vigil.experiments")

REFRESH_S = 2.0
"""Seconds a controller reuses the group counts it read (the guard reads the log)."""

GroupAccuracy = dict[str, dict[tuple[str, str], tuple[int, int]]]
"""Per variant, per ``(attribute, group)``: ``(labelled rows, correct rows)``."""


def group_breach(
    counts: Mapping[str, Mapping[tuple[str, str], tuple[int, int]]],
    stable: str,
    canary: str,
    *,
    margin: float,
    min_labels: int,
) -> tuple[str | None, dict[str, float | None]]:
    """The group whose accuracy the canary lowers most, if by more than ``margin`` (its
    reason), and the evidence: the worst drop and both accuracies in that group."""
    mine, theirs = counts.get(canary, {}), counts.get(stable, {})
    worst: tuple[float, str, str, float, float] | None = None
    for key, (n_c, ok_c) in sorted(mine.items()):
        n_s, ok_s = theirs.get(key, (0, 0))
        if n_c < min_labels or n_s < min_labels:
            continue
        acc_c, acc_s = ok_c / n_c, ok_s / n_s
        drop = acc_s - acc_c
        if worst is None or drop > worst[0]:
            worst = (drop, key[0], key[1], acc_c, acc_s)
    if worst is None:
        return None, {}
    drop, attribute, group, acc_c, acc_s = worst
    evidence: dict[str, float | None] = {
        "worst_group_accuracy_drop": drop,
        "worst_group_canary_accuracy": acc_c,
        "worst_group_stable_accuracy": acc_s,
    }
    if drop > margin:
        return (
            f"canary accuracy for {attribute}={group} is {acc_c:.4g}, below the stable "
            f"{acc_s:.4g} by more than {margin:g}",
            evidence,
        )
    return None, evidence


def _count(rows: pd.DataFrame, fairness: ModelFairness, variants: tuple[str, str]) -> GroupAccuracy:
    from vigil.monitor.group_fairness import group_values  # pandas: only once labels join

    out: GroupAccuracy = {v: {} for v in variants}
    if rows.empty:
        return out
    correct = [
        label_key(a) == label_key(b) for a, b in zip(rows["label"], rows["prediction"], strict=True)
    ]
    variant = rows["variant"].astype(str).tolist()
    for attribute in fairness.attributes:
        groups = group_values(rows, attribute)
        for v, g, ok in zip(variant, groups, correct, strict=True):
            if g is None or v not in out:
                continue
            n, k = out[v].get((attribute.name, g), (0, 0))
            out[v][(attribute.name, g)] = (n + 1, k + int(ok))
    return out


def read_group_accuracy(
    app: ExperimentServices,
    endpoint: str,
    variants: tuple[str, str],
    fairness: ModelFairness,
    since: float,
    models: Sequence[str],
) -> GroupAccuracy:
    """Labelled rows and correct rows per group of each of ``variants`` of ``endpoint``
    (served by ``models``), from the inference log since unix time ``since`` (the ramp's
    start)."""
    # pyarrow and pandas: off the hot path, only while a guarded canary ramps
    import pandas as pd

    from vigil.capture.reader import read_capture
    from vigil.monitor.group_fairness import with_feedback_fields
    from vigil.monitor.measure import labelled_rows

    start = datetime.fromtimestamp(since, UTC)
    frames = [
        read_capture(m, start, store=app.artifacts, log_dir=app.capture_dir)
        for m in sorted(set(models))
    ]
    frames = [f for f in frames if not f.empty and "endpoint" in f]
    if not frames:
        return {v: {} for v in variants}
    rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    ok = (rows["endpoint"] == endpoint) & rows["variant"].isin(variants)
    ok &= rows["status"].fillna(200).astype(int) < 400
    rows = rows[ok.to_numpy()]
    feedback = app.feedback_store()
    try:
        labels = feedback.read(start)
    finally:
        feedback.close()
    # An attribute sent with feedback joins the labelled rows as their labels do.
    judged = with_feedback_fields(labelled_rows(rows, labels), labels, fairness)
    return _count(judged, fairness, variants)


class GroupCounter:
    """Reads :func:`read_group_accuracy` for a controller, at most every
    :data:`REFRESH_S` seconds per endpoint and ramp."""

    def __init__(self, app: ExperimentServices) -> None:
        self.vigil = app
        self._kept: dict[tuple[str, float], tuple[float, GroupAccuracy]] = {}

    def counts(
        self,
        endpoint: str,
        variants: tuple[str, str],
        fairness: ModelFairness,
        since: float,
        models: Sequence[str],
    ) -> GroupAccuracy:
        key = (endpoint, since)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < REFRESH_S:
            return kept[1]
        try:
            found = read_group_accuracy(self.vigil, endpoint, variants, fairness, since, models)
        except Exception:  # an unreadable log must not stop the ramp's other guards
            log.exception("could not read the group counts of endpoint %s", endpoint)
            found = kept[1] if kept is not None else {v: {} for v in variants}
        self._kept = {key: (now, found)}
        return found
