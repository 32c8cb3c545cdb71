"""The null hypothesis, simulated: every statistic vigil decides with, on data that did not
change, and beside it the same statistic on a real change.

A *cell* is one statistic on one kind of data at one window size. Its null trial draws a
reference and a current window from the same distribution with a given seed and says
whether vigil alarmed; its power trial does the same with a planted change. Running a
cell over many seeds gives its false-alarm rate, to be held to:

* the nominal level of a test (``ks``, ``chi2``, PCA's Mann–Whitney, the A/B tests): the
  count of alarms within the binomial interval of ``alpha`` (never above its upper end);
* 1 % for a threshold rule (a distance, the dataset's share rule, the domain classifier).

``tests/calibration/`` runs a fast subset of the cells in CI; ``python -m
bench.calibration`` runs them all with 1,000 seeds and writes the table of
``docs/statistics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from vigil.bundle.profile import build_profile
from vigil.bundle.signature import FeatureSpec, Signature
from vigil.drift import compare, compare_to_profile
from vigil.drift.multivariate import domain_classifier, pca_reconstruction
from vigil.drift.select import P_VALUE_METHODS

REFERENCE_ROWS = 5000
WINDOWS = (30, 100, 300, 1000, 5000, 20_000)
ALPHA = 0.05
RULE_LIMIT = 0.01
"""Highest false-alarm rate a threshold rule may have on unchanged data."""

Rng = np.random.Generator


@dataclass(frozen=True)
class Verdict:
    alarm: bool
    method: str
    is_test: bool


@dataclass(frozen=True)
class Cell:
    group: str
    data: str
    window: int
    nominal: float | None
    """The test's level; None for a threshold rule (held to :data:`RULE_LIMIT`)."""
    null: Callable[[int], Verdict]
    power: Callable[[int], Verdict]

    @property
    def label(self) -> str:
        return f"{self.group} · {self.data} · {self.window}"


@dataclass(frozen=True)
class Result:
    cell: Cell
    method: str
    is_test: bool
    trials: int
    alarms: int
    power_trials: int
    detections: int

    @property
    def rate(self) -> float:
        return self.alarms / self.trials

    @property
    def power(self) -> float:
        return self.detections / self.power_trials if self.power_trials else math.nan

    @property
    def level(self) -> float:
        """What the rate is held to: the test's level or the rule's limit."""
        return self.cell.nominal if self.is_test and self.cell.nominal else RULE_LIMIT

    @property
    def upper(self) -> int:
        """Most alarms consistent with the level (the binomial 99.9 % quantile)."""
        return int(sps.binom.ppf(0.999, self.trials, self.level))

    @property
    def lower(self) -> int:
        """Fewest alarms consistent with a test's level (binomial 0.1 % quantile)."""
        return int(sps.binom.ppf(0.001, self.trials, self.level)) if self.is_test else 0

    @property
    def calibrated(self) -> bool:
        return self.alarms <= self.upper

    @property
    def verdict(self) -> str:
        if not self.calibrated:
            return "TOO MANY ALARMS"
        if self.alarms < self.lower:
            return "conservative"
        return "ok"


def run(cell: Cell, seeds: Iterable[int], power_seeds: Iterable[int] = ()) -> Result:
    null = [cell.null(seed) for seed in seeds]
    power = [cell.power(10_000 + seed) for seed in power_seeds]
    methods = sorted({v.method for v in null})
    return Result(
        cell=cell,
        method="/".join(methods),
        is_test=all(v.is_test for v in null),
        trials=len(null),
        alarms=sum(v.alarm for v in null),
        power_trials=len(power),
        detections=sum(v.alarm for v in power),
    )


# --- data --------------------------------------------------------------------------------


def zipf_levels(k: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` category names with Zipf(1) frequencies: a few common, a long rare tail."""
    p = 1.0 / np.arange(1, k + 1)
    return np.array([f"level{i}" for i in range(k)], dtype=object), p / p.sum()


def _missing(rng: Rng, x: np.ndarray, share: float) -> np.ndarray:
    return np.where(rng.random(x.size) < share, np.nan, x)


# Each family draws ``n`` values; ``effect`` 0 is the null, 1 the power check's change
# (2 for the smallest windows, whose tests need a bigger one to have a chance).
Draw = Callable[[Rng, int, float], np.ndarray]

NUMERIC: dict[str, Draw] = {
    "normal": lambda rng, n, effect: rng.normal(0.5 * effect, 1.0, n),
    "tied": lambda rng, n, effect: rng.poisson(3.0 + 1.5 * effect, n).astype(float),
    "heavy-tailed": lambda rng, n, effect: rng.standard_t(2, n) + effect,
    # 40 % missing on both sides: the shift is larger because binned statistics see it
    # diluted by the unchanged missing share.
    "missing-heavy": lambda rng, n, effect: _missing(rng, rng.normal(effect, 1.0, n), 0.4),
}


def _categorical(k: int) -> Draw:
    levels, p = zipf_levels(k)
    moved = np.zeros(k)
    moved[k // 2 :] = 1.0
    moved /= moved.sum()

    def draw(rng: Rng, n: int, effect: float) -> np.ndarray:
        out = rng.choice(levels, n, p=p)
        if effect:  # a third of the traffic (more for small windows) moves to the rare half
            swap = rng.random(n) < min(effect / 3, 1.0)
            out[swap] = rng.choice(levels, int(swap.sum()), p=moved)
        return out

    return draw


CATEGORICAL: dict[str, Draw] = {
    "categorical (5 levels)": _categorical(5),
    "categorical (60 levels)": _categorical(60),
    "categorical (500 levels)": _categorical(500),
}


# --- column cells --------------------------------------------------------------------------


def _verdict(column: Any) -> Verdict:
    return Verdict(bool(column.drifted), column.method, column.method in P_VALUE_METHODS)


def _signature(categorical: bool) -> Signature:
    return Signature(inputs=[FeatureSpec(name="x", dtype="string" if categorical else "float64")])


def column_trial(
    draw: Draw, window: int, path: str, categorical: bool
) -> Callable[[bool], Callable[[int], Verdict]]:
    def trial(changed: bool) -> Callable[[int], Verdict]:
        effect = (2.0 if window < 100 else 1.0) if changed else 0.0

        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            ref, cur = draw(rng, REFERENCE_ROWS, 0.0), draw(rng, window, effect)
            if path == "raw":
                cats = ["x"] if categorical else []
                return _verdict(compare({"x": ref}, {"x": cur}, categorical=cats).column("x"))
            sample = 1000 if path == "profile" else 0
            profile = build_profile(
                pd.DataFrame({"x": ref}), _signature(categorical), sample_size=sample, seed=seed
            )
            return _verdict(compare_to_profile(profile, {"x": cur}).column("x"))

        return one

    return trial


PATHS = {
    "raw": "column vs raw reference",
    "profile": "column vs profile (1,000-row sample)",
    "profile-no-sample": "column vs profile (no sample)",
}


def column_cells(
    windows: Iterable[int] = WINDOWS, paths: Iterable[str] = tuple(PATHS)
) -> list[Cell]:
    cells = []
    for path in paths:
        for families, categorical in ((NUMERIC, False), (CATEGORICAL, True)):
            if categorical and path == "profile-no-sample":
                continue  # a categorical profile holds exact counts: the same as "profile"
            for name, draw in families.items():
                for window in windows:
                    trial = column_trial(draw, window, path, categorical)
                    cells.append(Cell(PATHS[path], name, window, ALPHA, trial(False), trial(True)))
    return cells


FORCED_NUMERIC = ("cvm", "wasserstein_normalised", "psi", "js", "kl", "hellinger", "tvd")
FORCED_CATEGORICAL = ("psi", "js", "kl", "hellinger", "tvd")


def forced_cells(windows: Iterable[int] = (30, 300, 5000)) -> list[Cell]:
    """Every method a user can force, at every size: each must stand on its own."""

    def trial(
        draw: Draw, window: int, method: str, cat: bool
    ) -> Callable[[bool], Callable[[int], Verdict]]:
        def make(changed: bool) -> Callable[[int], Verdict]:
            effect = (2.0 if window < 100 else 1.0) if changed else 0.0

            def one(seed: int) -> Verdict:
                rng = np.random.default_rng(seed)
                ref, cur = draw(rng, REFERENCE_ROWS, 0.0), draw(rng, window, effect)
                report = compare(
                    {"x": ref}, {"x": cur}, categorical=["x"] if cat else [], methods={"x": method}
                )
                return _verdict(report.column("x"))

            return one

        return make

    cells = []
    for family, methods, cat in (
        ("normal", FORCED_NUMERIC, False),
        ("categorical (60 levels)", FORCED_CATEGORICAL, True),
    ):
        draw = (CATEGORICAL if cat else NUMERIC)[family]
        for method in methods:
            for window in windows:
                t = trial(draw, window, method, cat)
                cells.append(Cell(f"forced {method}", family, window, ALPHA, t(False), t(True)))
    return cells


# --- dataset verdict ---------------------------------------------------------------------


def _dataset_frame(rng: Rng, n: int, shifted: int) -> dict[str, np.ndarray]:
    levels, p = zipf_levels(5)
    out: dict[str, np.ndarray] = {}
    for j in range(20):
        out[f"x{j}"] = rng.normal(0.7 if j < shifted else 0.0, 1.0, n)
    for j in range(5):
        out[f"c{j}"] = rng.choice(levels, n, p=p)
    return out


def dataset_cells(windows: Iterable[int] = (100, 1000, 20_000)) -> list[Cell]:
    def trial(window: int, shifted: int) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            ref = _dataset_frame(rng, REFERENCE_ROWS, 0)
            report = compare(ref, _dataset_frame(rng, window, shifted))
            return Verdict(report.dataset_drifted, "BH + share ≥ 50 %", False)

        return one

    return [
        Cell(
            "dataset verdict (25 features)",
            "normal + categorical",
            w,
            None,
            trial(w, 0),
            trial(w, 15),
        )
        for w in windows
    ]


# --- multivariate ------------------------------------------------------------------------


def _equicorrelated(rng: Rng, n: int, p: int, broken: bool) -> np.ndarray:
    common = rng.normal(size=(n, 1))
    x = np.sqrt(0.5) * common + np.sqrt(0.5) * rng.normal(size=(n, p))
    if broken:  # the first feature stops following the others
        x[:, 0] = rng.normal(size=n)
    return x


def pca_cells(
    features: Iterable[int] = (2, 5, 10, 25), windows: Iterable[int] = (100, 1000)
) -> list[Cell]:
    def trial(p: int, window: int, broken: bool) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            ref = _equicorrelated(rng, REFERENCE_ROWS, p, False)
            res = pca_reconstruction(ref, _equicorrelated(rng, window, p, broken), seed=seed)
            return Verdict(res.drifted, "pca_reconstruction", True)

        return one

    return [
        Cell(
            "multivariate: PCA reconstruction",
            f"{p} features",
            w,
            0.01,
            trial(p, w, False),
            trial(p, w, True),
        )
        for p in features
        for w in windows
    ]


def domain_classifier_cells(
    windows: Iterable[int] = (100, 1000), reference_rows: int = REFERENCE_ROWS
) -> list[Cell]:
    def trial(window: int, broken: bool) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            ref = _equicorrelated(rng, reference_rows, 5, False)
            res = domain_classifier(ref, _equicorrelated(rng, window, 5, broken), seed=seed)
            return Verdict(res.drifted, "domain_classifier", False)

        return one

    return [
        Cell(
            "multivariate: domain classifier",
            "5 features",
            w,
            None,
            trial(w, False),
            trial(w, True),
        )
        for w in windows
    ]


def all_cells() -> list[Cell]:
    return [
        *column_cells(),
        *forced_cells(),
        *dataset_cells(),
        *pca_cells(),
        *domain_classifier_cells(),
    ]


# --- A/B procedures ------------------------------------------------------------------------


def experiment_cells() -> list[Cell]:
    from vigil.stats import (
        MeanStats,
        ProportionStats,
        SequentialTest,
        sample_ratio_mismatch,
        summarize_experiment,
        two_proportion_ztest,
        welch_ttest,
    )

    def z_test(changed: bool) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            a = ProportionStats(2000, int(rng.binomial(2000, 0.10)))
            b = ProportionStats(2000, int(rng.binomial(2000, 0.13 if changed else 0.10)))
            return Verdict(two_proportion_ztest(a, b).p_value < ALPHA, "z-test", True)

        return one

    def welch(changed: bool) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            a = MeanStats.from_values(rng.lognormal(0.0, 1.0, 300))
            b = MeanStats.from_values(rng.lognormal(0.3 if changed else 0.0, 1.0, 300))
            return Verdict(welch_ttest(a, b).p_value < ALPHA, "welch t-test", True)

        return one

    def msprt(changed: bool) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            test = SequentialTest(alpha=ALPHA)
            a = b = ProportionStats(0, 0)
            for _ in range(50):  # 50 looks at 100 more rows per arm
                a = a + ProportionStats(100, int(rng.binomial(100, 0.10)))
                b = b + ProportionStats(100, int(rng.binomial(100, 0.13 if changed else 0.10)))
                if test.update(a, b).rejected:
                    break
            return Verdict(test.rejected, "mSPRT, 50 looks", True)

        return one

    def summary(changed: bool) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            a = b = ProportionStats(0, 0)
            previous: dict[str, float] | None = None
            for _ in range(20):  # a product owner refreshing the status 20 times
                a = a + ProportionStats(250, int(rng.binomial(250, 0.10)))
                b = b + ProportionStats(250, int(rng.binomial(250, 0.13 if changed else 0.10)))
                s = summarize_experiment(
                    {"a": a, "b": b}, "a", previous_p_values=previous, draws=2000
                )
                if s.decision == "ship b":
                    return Verdict(True, "summarize_experiment, 20 looks", True)
                previous = {"b": s.variant("b").always_valid_p_value}
            return Verdict(False, "summarize_experiment, 20 looks", True)

        return one

    def srm(changed: bool) -> Callable[[int], Verdict]:
        def one(seed: int) -> Verdict:
            rng = np.random.default_rng(seed)
            a = int(rng.binomial(10_000, 0.53 if changed else 0.5))
            return Verdict(sample_ratio_mismatch({"a": a, "b": 10_000 - a}).mismatch, "SRM", True)

        return one

    return [
        Cell("A/B: fixed horizon", "conversion 10 %", 2000, ALPHA, z_test(False), z_test(True)),
        Cell("A/B: fixed horizon", "lognormal revenue", 300, ALPHA, welch(False), welch(True)),
        Cell("A/B: sequential", "conversion 10 %", 5000, ALPHA, msprt(False), msprt(True)),
        Cell("A/B: status looks", "conversion 10 %", 5000, ALPHA, summary(False), summary(True)),
        Cell("A/B: sample ratio", "50/50 split", 10_000, 0.001, srm(False), srm(True)),
    ]


# --- streaming detectors -------------------------------------------------------------------


def detector_streams() -> dict[str, tuple[Callable[[], Any], Callable[[Rng, int], np.ndarray]]]:
    """Each detector with its defaults, and the stationary stream it is meant for."""
    from vigil.drift.detectors import ADWIN, DDM, EDDM, KSWIN, PageHinkley

    def errors(rate: float) -> Callable[[Rng, int], np.ndarray]:
        return lambda rng, n: rng.binomial(1, rate, n).astype(float)

    def normal(rng: Rng, n: int) -> np.ndarray:
        return rng.normal(size=n)

    return {
        "ADWIN · N(0, 1)": (ADWIN, normal),
        "ADWIN · errors 10 %": (ADWIN, errors(0.1)),
        "DDM · errors 10 %": (DDM, errors(0.1)),
        "DDM · errors 30 %": (DDM, errors(0.3)),
        "EDDM · errors 10 %": (EDDM, errors(0.1)),
        "EDDM · errors 30 %": (EDDM, errors(0.3)),
        "KSWIN · N(0, 1)": (lambda: KSWIN(seed=1), normal),
        "PageHinkley · N(0, 1)": (PageHinkley, normal),
    }


def false_alarms_per_10k(name: str, streams: int, length: int = 10_000) -> float:
    """False alarms per 10,000 stationary values of one detector's defaults."""
    make, draw = detector_streams()[name]
    alarms = 0
    for seed in range(streams):
        detector = make()
        for x in draw(np.random.default_rng(seed), length).tolist():
            detector.update(x)
            alarms += detector.drift_detected
    return alarms / (streams * length) * 10_000


# --- windows judged from merged summaries ----------------------------------------------------

SUMMARY_PATH = "column vs profile, window from merged summaries"
SUMMARY_REFERENCE_ROWS = 20_000


def _summary_verdict(ref: np.ndarray, cur: np.ndarray, categorical: bool, seed: int) -> Verdict:
    """The verdict of the summary engine (:mod:`vigil.monitor.summaries`): the window's
    rows captured over an hour, summarised in ten-minute buckets from record batches,
    the buckets merged, and the merge judged against the version's profile (20,000
    reference rows, so a 5,000-row sample, as registration keeps) as the monitor judges
    a window above the raw tests' limit."""
    import pyarrow as pa

    from vigil.monitor.baseline import Baseline
    from vigil.monitor.summaries import anchors_for, merge_all, summarise
    from vigil.monitor.summaries.judge import drift_report

    profile = build_profile(pd.DataFrame({"x": ref}), _signature(categorical), seed=seed)
    base = Baseline("m", 1, _signature(categorical), profile)
    anchors = anchors_for(base)
    n = cur.size
    times = np.datetime64("2026-01-05", "us") + np.linspace(0, 3599e6, n).astype("m8[us]")
    table = pa.table(
        {
            "request_id": pa.array(np.arange(n).astype(str)),
            "row": pa.array(np.zeros(n, dtype=np.int64)),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "route": pa.array(np.full(n, "native")),
            "model": pa.array(np.full(n, "m")),
            "version": pa.array(np.ones(n, dtype=np.int64)),
            "status": pa.array(np.full(n, 200, dtype=np.int64)),
            "feature.x": pa.array(cur, from_pandas=True),
        }
    )
    buckets = summarise(table.to_batches(max_chunksize=4096), lambda m, v: anchors, grain_s=600)
    merged = merge_all(buckets)
    assert merged is not None and merged.rows == n
    report = drift_report(merged, base)
    assert report is not None
    return _verdict(report.column("x"))


def summary_cells(
    windows: Iterable[int] = (5000, 20_000),
    families: Iterable[str] = ("normal", "tied", "missing-heavy", "categorical (60 levels)"),
) -> list[Cell]:
    """Windows too large for the raw tests, judged from merged summaries (the monitor's
    default for windows of whole hours): the distances' thresholds must hold their 1 %."""
    cells = []
    for family in families:
        categorical = family in CATEGORICAL
        draw = CATEGORICAL[family] if categorical else NUMERIC[family]
        for window in windows:

            def trial(
                changed: bool, draw: Draw = draw, window: int = window, cat: bool = categorical
            ) -> Callable[[int], Verdict]:
                def one(seed: int) -> Verdict:
                    rng = np.random.default_rng(seed)
                    ref = draw(rng, SUMMARY_REFERENCE_ROWS, 0.0)
                    cur = draw(rng, window, 1.0 if changed else 0.0)
                    return _summary_verdict(ref, cur, cat, seed)

                return one

            cells.append(Cell(SUMMARY_PATH, family, window, ALPHA, trial(False), trial(True)))
    return cells
