"""False alarms on unchanged data stay at their nominal level, and real changes are found.

A fast subset of the cells of :mod:`tests.calibration.cells` (the full table, 1,000 seeds
a cell, is ``python -m bench.calibration`` and ``docs/statistics.md``). Seeds are fixed,
so each cell's count is the same on every run; the bounds are the binomial 99.9 %
quantiles of the nominal level (tests) or of 1 % (threshold rules).
"""

from __future__ import annotations

import pytest
from tests.calibration.cells import (
    Cell,
    column_cells,
    dataset_cells,
    detector_streams,
    domain_classifier_cells,
    experiment_cells,
    false_alarms_per_10k,
    forced_cells,
    pca_cells,
    run,
    summary_cells,
)

pytestmark = pytest.mark.slow


def _seeds(cell: Cell) -> int:
    return 100 if "500 levels" in cell.data else 200


COLUMN_CELLS = [
    *column_cells(windows=(30, 1000, 20_000), paths=("raw",)),
    *[
        c
        for c in column_cells(windows=(100, 5000), paths=("profile",))
        if c.data in ("normal", "categorical (500 levels)")
    ],
    *[
        c
        for c in column_cells(windows=(30, 300, 20_000), paths=("profile-no-sample",))
        if c.data in ("normal", "tied", "missing-heavy")
    ],
]


@pytest.mark.parametrize("cell", COLUMN_CELLS, ids=lambda c: c.label)
def test_column_statistics_are_calibrated(cell: Cell) -> None:
    result = run(cell, range(_seeds(cell)), range(20))
    assert result.calibrated, (
        f"{result.alarms} of {result.trials} iid windows flagged by {result.method}; "
        f"at most {result.upper} fit a rate of {result.level:.0%}"
    )
    # ... and not by never flagging: the planted change is found.
    needed = 0.8 if cell.window >= 300 else 0.25
    assert result.power >= needed, f"power {result.power:.2f} on a real change"


@pytest.mark.parametrize("cell", forced_cells(windows=(30, 5000)), ids=lambda c: c.label)
def test_forced_methods_are_calibrated(cell: Cell) -> None:
    result = run(cell, range(100), range(20))
    assert result.calibrated, f"{result.alarms} of {result.trials} iid windows flagged"
    # A distance at 30 rows must clear its chance bound: it sees only large changes (the
    # automatic choice tests small windows instead).
    needed = 0.25 if cell.window < 100 else 0.8
    assert result.power >= needed, f"power {result.power:.2f} on a real change"


@pytest.mark.parametrize(
    "cell",
    [
        *dataset_cells(windows=(1000,)),
        *pca_cells(features=(2, 10), windows=(1000,)),
        *domain_classifier_cells(windows=(300,), reference_rows=1000),
    ],
    ids=lambda c: c.label,
)
def test_dataset_and_multivariate_verdicts_are_calibrated(cell: Cell) -> None:
    slow = "domain classifier" in cell.group or "dataset" in cell.group
    result = run(cell, range(20 if slow else 200), range(10))
    assert result.calibrated, f"{result.alarms} of {result.trials} iid windows flagged"
    assert result.power >= 0.8, f"power {result.power:.2f} on a real change"


@pytest.mark.parametrize("cell", experiment_cells(), ids=lambda c: c.label)
def test_ab_procedures_are_calibrated(cell: Cell) -> None:
    looks = "looks" in cell.group  # 20 summaries a trial
    result = run(cell, range(100 if looks else 300), range(30 if looks else 50))
    assert result.calibrated, f"{result.alarms} of {result.trials} A/A experiments flagged"
    assert result.power >= 0.6, f"power {result.power:.2f} on a real lift"


@pytest.mark.parametrize(
    ("name", "streams"),
    [(name, 2 if name.startswith("KSWIN") else 10) for name in detector_streams()],
)
def test_streaming_detectors_stay_quiet_on_a_stable_stream(name: str, streams: int) -> None:
    # The documented defaults alarm well under once per 10,000 stable values (River's
    # defaults: EDDM 20, KSWIN 13, Page-Hinkley 6 per 10,000).
    assert false_alarms_per_10k(name, streams) <= 0.2


@pytest.mark.parametrize(
    "cell",
    summary_cells(windows=(5000,), families=("normal", "categorical (60 levels)")),
    ids=lambda c: c.label,
)
def test_windows_judged_from_summaries_are_calibrated(cell: Cell) -> None:
    # The monitor's default for windows of whole hours above the raw tests' limit: a
    # distance on merged bucket summaries, held to the threshold rules' 1 %.
    result = run(cell, range(100), range(10))
    assert not result.is_test and result.level == 0.01
    assert result.calibrated, (
        f"{result.alarms} of {result.trials} iid windows flagged by {result.method}; "
        f"at most {result.upper} fit a rate of {result.level:.0%}"
    )
    assert result.power >= 0.8, f"power {result.power:.2f} on a real change"
