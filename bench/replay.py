"""Replay at scale: a candidate and the served model scored on N captured rows.

``python -m bench.replay --rows 1000000 [--rounds 3]``

The captured rows are written straight in the capture format (the same 20 numeric and 5
categorical features as :mod:`bench.monitor_scale`, one day, compacted parts of 100,000
rows), for model ``m`` version 1, and a second version (the candidate: the same pipeline,
more regularised) is registered. Two contenders then run, each in its own process,
interleaved over the rounds:

- ``vigil``: what ``vigil replay models:/m/2 --against models:/m/1`` does: both bundles
  loaded from the registry, the feedback store read, :func:`vigil.batch.replay.replay`
  (validation of every row against the signature, agreement and prediction drift);
- ``bare``: the floor: a PyArrow dataset read of the capture files' feature columns into
  pandas, and one ``predict`` call of each model on it.

Both start timing once the two models are loaded and the modules imported (the same for
both), and report wall time and peak RSS above that point (their own, :mod:`bench._rss`);
the table gives vigil's
figures as ratios to the floor's in the same round. No labels are sent back: the floor has
no join to do, so the comparison is of reading, validating and scoring.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.monitor_scale import DAY, _app, _model, setup


def _candidate(home: Path) -> None:
    from sklearn.base import clone

    app = _app(home)
    model, reference = _model()
    features = [c for c in reference.columns if c != "label"]
    stricter = clone(model).set_params(clf__C=0.05).fit(reference[features], reference["label"])
    app.register(stricter, name="m", reference=reference, target="label")
    app.database.dispose()


def child(home: Path, contender: str) -> dict[str, float]:
    import pyarrow.dataset as ds

    from bench._rss import peak_rss, reset_peak
    from vigil.batch.replay import replay

    app = _app(home)
    candidate, served = app.load("models:/m/2"), app.load("models:/m/1")
    reset_peak()  # both start here: models loaded, modules imported
    start = time.perf_counter()
    if contender == "vigil":
        store = app.feedback_store()
        try:
            labels = store.read(since=DAY)
        finally:
            store.close()
        report = replay(
            candidate,
            model="m",
            since=DAY,
            until=DAY + timedelta(days=1),
            feedback=labels,
            store=app.artifacts,
            log_dir=app.capture_dir,
            against=served,
        )
        rows = report.rows
    else:
        root = Path(app.artifacts.resolve_key("capture/model=m"))
        names = [f.name for f in candidate.signature.inputs]
        table = ds.dataset(root, format="parquet").to_table(columns=[f"feature.{n}" for n in names])
        frame = table.rename_columns(names).to_pandas()
        candidate.model.predict(frame)
        served.model.predict(frame)
        rows = len(frame)
    return {"wall_s": time.perf_counter() - start, "peak_rss_mb": peak_rss() / 2**20, "rows": rows}


def _run(home: Path, contender: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.replay", "--child", contender, str(home)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args(argv)
    if args.child:
        contender, home = args.child
        print(json.dumps(child(Path(home), contender)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t = time.perf_counter()
        setup(home, args.rows)
        _candidate(home)
        print(f"setup: {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
        ratios: dict[str, list[float]] = {"wall": [], "peak_rss": []}
        for i in range(args.rounds):
            bare = _run(home, "bare")
            vigil = _run(home, "vigil")
            assert vigil["rows"] == bare["rows"] == args.rows, (vigil, bare)
            ratios["wall"].append(vigil["wall_s"] / bare["wall_s"])
            ratios["peak_rss"].append(vigil["peak_rss_mb"] / bare["peak_rss_mb"])
            print(f"round {i + 1}: bare {json.dumps(bare)}  vigil {json.dumps(vigil)}", flush=True)
        for name, values in ratios.items():
            print(
                f"vigil / bare {name}: median {statistics.median(values):.2f}x "
                f"(range {min(values):.2f}-{max(values):.2f}) over {args.rounds} rounds"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
