"""Monitoring at scale: one ``1d`` window over N captured rows, by rows or by summaries.

``python -m bench.monitor_scale --rows 1000000 [--engines rows,summaries] [--data DIR]
[--jobs 2] [--stage all|setup|first|incremental]``

``--engines count,countwhole``: count windows (the default ``1h or 1000``) streamed from the
log (``count``, also run again after one more part, as the summaries are) and, as the
baseline, read as before streaming: the whole lookback in one frame (``countwhole``);
``rows`` is the ``1d`` window read as rows (``VIGIL_MONITOR_SUMMARIES=false``), streamed.

Rows (20 numeric and 5 categorical features, a classifier's predictions and probabilities)
are written straight in the capture format as compacted Parquet parts of 100,000 rows,
one after the other in time over one day as segments are,
(issue 22: not through HTTP), for a model registered with 20,000 reference rows. Each
engine then runs in its own process (``monitor_windows`` with ``window="1d"``) and reports
wall time, peak RSS (its own, see :mod:`bench._rss`) and rows per second; the summaries
engine runs twice more: again with nothing new (stored summaries only), and after one more
part in the next day (an incremental cycle).

``--labels 0.5`` also writes feedback for that share of the rows, as compaction stores it
(a part per capture part, dated by arrival an hour after the predictions, placed on them,
sorted by prediction), so the engines join labels; ``--window 1h`` sets the window of the
``rows`` and ``summaries`` engines (``1d`` by default). The runs report ``labelled`` (rows
joined to a label) and, from the streamed engine, ``labels_read`` and ``peak_labels``
(feedback rows read to join windows, and the most one read held).

With ``--data DIR`` the written rows are kept in DIR (about 22 MB per 100,000 rows) and
reused by the next run of the same size, so a 100M-row run can be set up once
(``--stage setup``), its first run measured (``--stage first``, which keeps the state it
leaves) and its incremental cycle measured again and again (``--stage incremental``, each
time on a fresh copy of that state). Copies hard-link the Parquet parts and summaries
(never modified in place) and copy the rest (the SQLite registry is), so they cost no
disk. ``--jobs`` writes parts in that many processes; ``--distinct D`` writes D parts
spread over the day and hard-links the others to them (``--rows 100000000 --distinct 100``:
22 GB of Parquet written as 2.2 GB, and setup in minutes, not an hour).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

DAY = datetime(2026, 1, 5, tzinfo=UTC)
PART_ROWS = 100_000
LEVELS = np.asarray([f"l{i}" for i in range(8)], dtype=object)


def _frame(n: int, seed: int):  # type: ignore[no-untyped-def]
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"x{j}": rng.normal(0.0, 1.0, n) for j in range(20)}
    for j in range(5):
        data[f"c{j}"] = rng.choice(LEVELS, n)
    frame = pd.DataFrame(data)
    frame["label"] = (frame["x0"] + 0.5 * frame["x1"] + rng.normal(0, 1, n) > 0).astype(int)
    return frame


def _model():  # type: ignore[no-untyped-def]
    """The classifier, trained the same way every call (deterministic)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    reference = _frame(20_000, 0)
    features = [c for c in reference.columns if c != "label"]
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("c", OneHotEncoder(handle_unknown="ignore"), [f"c{j}" for j in range(5)])],
                    remainder="passthrough",
                ),
            ),
            ("clf", LogisticRegression(max_iter=300)),
        ]
    ).fit(reference[features], reference["label"])
    return model, reference


def _app(home: Path):  # type: ignore[no-untyped-def]
    from vigil.app import Vigil
    from vigil.settings import load_settings

    return Vigil(load_settings(home=home))


def _part_path(app, seed: int, day: datetime) -> Path:  # type: ignore[no-untyped-def]
    key = f"capture/model=m/date={day.date().isoformat()}/part-bench{seed:05d}.parquet"
    return Path(app.artifacts.resolve_key(key))


def _write_parts(home: Path, rows: int, ks: list[int], n_parts: int, labels: float = 0.0) -> None:
    app = _app(home)
    model, _reference = _model()
    span = 86_000 / n_parts  # parts follow one another in time, as segments do
    for k in ks:
        if _part_path(app, 1 + k, DAY).exists():
            continue  # written by an earlier setup of the same layout
        write_part(
            app,
            model,
            min(PART_ROWS, rows - k * PART_ROWS),
            seed=1 + k,
            day=DAY,
            span=(k * span, (k + 1) * span),
            labels=labels,
        )
    app.database.dispose()


def setup(
    home: Path, rows: int, jobs: int = 1, distinct: int | None = None, labels: float = 0.0
) -> None:
    """Register the model and write the rows' parts; with ``distinct``, only that many
    parts are written (over the whole day) and part ``k`` is a hard link to part
    ``k % distinct`` under its own name: the monitor reads and summarises every one of
    them (a part is known by its name), at no disk cost."""
    from concurrent.futures import ProcessPoolExecutor

    app = _app(home)
    if not app.registry.list_models():
        model, reference = _model()
        app.register(model, name="m", reference=reference, target="label", alias="production")
    n_parts = -(-rows // PART_ROWS)
    written = min(distinct or n_parts, n_parts)
    ks = list(range(written))
    if jobs <= 1:
        _write_parts(home, rows, ks, written, labels)
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for f in [
                pool.submit(_write_parts, home, rows, ks[j::jobs], written, labels)
                for j in range(jobs)
            ]:
                f.result()
    for k in range(written, n_parts):
        link = _part_path(app, 1 + k, DAY)
        if not link.exists():
            os.link(_part_path(app, 1 + k % written, DAY), link)
    app.database.dispose()


def _link_or_copy(src: str, dst: str) -> object:
    # Parts and summaries are written once, atomically, never changed in place: linked.
    if src.endswith((".parquet", ".summary", ".keys")):
        os.link(src, dst)
        return dst
    return shutil.copy2(src, dst)


def _copy(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, copy_function=_link_or_copy)


BLOCKS = 16
"""Distinct blocks of feature rows (and their predictions) the parts cycle through."""
_blocks: dict[tuple[int, int], tuple[Any, Any]] = {}


def _block(model: Any, n: int, seed: int) -> tuple[Any, Any]:
    """Feature rows and the model's probabilities for a part: one of :data:`BLOCKS` iid
    blocks drawn once per process (scoring 100,000 rows again for each of 1,000 parts
    would make writing 100M rows take an hour); times, request ids and latencies are
    each part's own."""
    import pyarrow as pa

    key = (n, seed % BLOCKS)
    if key not in _blocks:
        frame = _frame(n, seed % BLOCKS + 1)
        features = [c for c in frame.columns if c != "label"]
        proba = model.predict_proba(frame[features])
        _blocks[key] = ({f"feature.{c}": pa.array(frame[c].to_numpy()) for c in features}, proba)
    return _blocks[key]


def write_part(
    app, model, n: int, *, seed: int, day: datetime, span=(0.0, 86_000.0), labels: float = 0.0
) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    features, proba = _block(model, n, seed)
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.uniform(span[0], span[1], n))
    columns = {
        "request_id": pc.binary_join_element_wise(
            f"p{seed}-", pc.cast(pa.array(np.arange(n)), pa.string()), ""
        ),
        "row": pa.array(np.zeros(n, dtype=np.int64)),
        "time": pa.array(
            (pd.Timestamp(day) + pd.to_timedelta(offsets, unit="s")).to_numpy(),
            pa.timestamp("us", tz="UTC"),
        ),
        "route": pa.array(["native"]).take(pa.array(np.zeros(n, dtype=np.int64))),
        "model": pa.array(["m"]).take(pa.array(np.zeros(n, dtype=np.int64))),
        "version": pa.array(np.ones(n, dtype=np.int64)),
        "latency_ms": pa.array(rng.lognormal(1.0, 0.5, n)),
        "status": pa.array(np.full(n, 200, dtype=np.int64)),
        "prediction": pa.array(proba.argmax(axis=1).astype(np.int64)),
        "proba.0": pa.array(proba[:, 0]),
        "proba.1": pa.array(proba[:, 1]),
    }
    columns.update(features)
    path = _part_path(app, seed, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, compression="zstd", row_group_size=65_536)
    if labels > 0:
        _write_labels(app, columns, proba, labels, seed=seed)


LABEL_DELAY = timedelta(hours=1)
"""How long after its prediction a label arrives in the benchmark."""


def _write_labels(app, columns, proba, share: float, *, seed: int) -> None:  # type: ignore[no-untyped-def]
    """Feedback for a random ``share`` of a part's rows, as compaction stores it: one part
    (dated by arrival) of labels placed on their predictions (time and model), sorted by
    prediction, in row groups of the feedback store's size. Labels are drawn from the
    model's own probabilities (calibrated: accuracy near the reference's)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vigil.feedback.store import PART_GROUP_ROWS

    rng = np.random.default_rng(seed + 7)
    n = len(columns["request_id"])
    chosen = np.flatnonzero(rng.random(n) < share)
    at = columns["time"].take(pa.array(chosen))
    arrived = pa.array(
        at.cast(pa.int64()).to_numpy() + int(LABEL_DELAY.total_seconds() * 1_000_000),
        pa.int64(),
    ).cast(pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "request_id": columns["request_id"].take(pa.array(chosen)),
            "row": pa.array(np.zeros(chosen.size, dtype=np.int64)),
            "reward": pa.nulls(chosen.size, pa.float64()),
            "time": arrived,
            "caller": pa.nulls(chosen.size, pa.string()),
            "prediction_time": at,
            "prediction_model": pa.array(["m"] * chosen.size, pa.string()),
            "label": pa.array((rng.random(chosen.size) < proba[chosen, 1]).astype(np.int64)),
            "segment": pa.array([f"bench{seed:05d}"] * chosen.size, pa.string()),
        }
    )
    day = arrived[0].as_py().date().isoformat() if chosen.size else DAY.date().isoformat()
    key = f"feedback/date={day}/part-bench{seed:05d}.parquet"
    path = Path(app.artifacts.resolve_key(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=PART_GROUP_ROWS)


COUNT_WINDOW = os.environ.get("BENCH_COUNT_WINDOW", "1h or 1000")
"""The window of the ``count`` engines (``--count-window``): by default the monitor's own."""
SUMMARY_WINDOW = os.environ.get("BENCH_WINDOW", "1d")
"""The window of the ``rows`` and ``summaries`` engines (``--window``)."""


def _whole_read(app, now: datetime):  # type: ignore[no-untyped-def]
    """The count windows as the monitor cut them before it streamed the log (the whole
    lookback in one frame, every window measured from it): the ``countwhole`` baseline."""
    from vigil.capture.reader import read_capture
    from vigil.monitor.baseline import load_baseline
    from vigil.monitor.engine import candidate_windows, due_windows
    from vigil.monitor.measure import measure_window
    from vigil.monitor.windows import parse_window

    since = DAY - timedelta(days=1)
    frame = read_capture("m", since, now, store=app.artifacts, log_dir=app.capture_dir)
    store = app.feedback_store()
    labels = store.read(since)
    store.close()
    spec = parse_window(COUNT_WINDOW)
    windows = candidate_windows(frame, [], spec, now=now, grace_s=0, rebuild=False)
    baseline = load_baseline(app, "m", 1)
    todo = due_windows(windows, labels, [], partial=False)
    return [measure_window(w, baseline, labels) for w in todo], len(frame)


def child(home: Path, engine: str, now: datetime) -> dict[str, float]:
    from bench._rss import peak_rss, reset_peak
    from vigil.monitor.engine import monitor_windows
    from vigil.monitor.settings import MonitorSettings

    app = _app(home)
    window = COUNT_WINDOW if engine.startswith("count") else SUMMARY_WINDOW
    settings = MonitorSettings(window=window, rules=[], grace_s=0, summaries=engine == "summaries")
    reset_peak()
    start = time.perf_counter()
    extra: dict[str, float] = {}
    if engine == "countwhole":
        results, records = _whole_read(app, now)
        counted = (len(results), sum(1 for r in results if r.dataset_drifted))
    else:
        done = monitor_windows(
            app, model="m", now=now, since=DAY - timedelta(days=1), settings=settings
        )
        results, records = done.results, done.n_records
        # Every window computed, not only the last ones the run keeps.
        counted = (done.n_computed, done.computed.drifted)
        if done.stream is not None:
            extra = {
                "rows_read": done.stream.rows_read,
                "keys_read": done.stream.keys_read,
                "peak_rows": done.stream.peak_rows,
            }
            if hasattr(done.stream, "peak_labels"):  # (not in the engine before issue 22.3)
                extra["labels_read"] = done.stream.labels_read
                extra["peak_labels"] = done.stream.peak_labels
        extra["labelled"] = done.computed.labelled  # every window, not the last kept
    wall = time.perf_counter() - start
    drifted = [r.drift.n_drifted if r.drift else None for r in results]
    out = {
        "wall_s": wall,
        "peak_rss_mb": peak_rss() / 2**20,
        "records": records,
        "windows": counted[0],
        **extra,
    }
    if window == "1d":
        out["drifted"] = drifted  # type: ignore[assignment]
    elif not engine.startswith("count"):
        out["windows_drifted"] = sum(1 for r in results if r.dataset_drifted)
    else:
        out["windows_drifted"] = counted[1]
    return out


def _run(home: Path, engine: str, now: datetime) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.monitor_scale",
            "--child",
            engine,
            str(home),
            now.isoformat(),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _first(data: Path, engine: str, rows: int, now: datetime) -> None:
    # Each engine on its own copy: a window stored by one is not computed again.
    _copy(data / "home", data / engine)
    res = _run(data / engine, engine, now)
    rate = rows / res["wall_s"]
    print(f"{engine:9s} first run  {json.dumps(res)}  {rate:,.0f} rows/s", flush=True)
    (data / f"{engine}.first.json").write_text(json.dumps(res))


def _incremental(data: Path, now: datetime, engine: str = "summaries") -> None:
    first = json.loads((data / f"{engine}.first.json").read_text())
    home = data / f"{engine}.incremental"
    _copy(data / engine, home)  # the state the first run left, afresh each time
    res = _run(home, engine, now)
    print(f"{engine} rerun      {json.dumps(res)}", flush=True)
    # One more part, the next day: the incremental cycle's new window(s).
    app = _app(home)
    write_part(app, _model()[0], PART_ROWS, seed=99_999, day=DAY + timedelta(days=1))
    app.database.dispose()
    res = _run(home, engine, now)
    share = 100 * res["wall_s"] / first["wall_s"]
    print(f"{engine} incremental {json.dumps(res)}  ({share:.1f} % of the first run)", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="rows,summaries")
    parser.add_argument("--data", type=Path, help="keep the rows (and runs) here, reused")
    parser.add_argument("--jobs", type=int, default=1, help="processes writing parts")
    parser.add_argument(
        "--distinct", type=int, help="write this many parts, hard-link the rest to them"
    )
    parser.add_argument("--stage", choices=["all", "setup", "first", "incremental"], default="all")
    parser.add_argument("--count-window", default=COUNT_WINDOW, help="of the count engines")
    parser.add_argument("--window", default=SUMMARY_WINDOW, help="of the rows and summaries")
    parser.add_argument(
        "--labels", type=float, default=0.0, help="share of rows with a label (feedback)"
    )
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args(argv)
    os.environ["BENCH_COUNT_WINDOW"] = args.count_window  # the children's
    os.environ["BENCH_WINDOW"] = args.window
    if args.distinct is not None and (args.distinct < 1 or args.rows % PART_ROWS):
        parser.error(f"--distinct needs --rows a multiple of {PART_ROWS:,} and D >= 1")
    if args.child:
        engine, home, now = args.child
        print(json.dumps(child(Path(home), engine, datetime.fromisoformat(now))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data if args.data is not None else Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        done = data / "setup.json"
        layout: dict[str, Any] = {"rows": args.rows, "distinct": args.distinct}
        if args.labels:
            if args.distinct is not None:
                parser.error("--labels needs distinct parts: linked parts would repeat labels")
            layout["labels"] = args.labels
        if not (done.exists() and json.loads(done.read_text()) == layout):
            if done.exists():  # another layout: its parts are not this one's
                shutil.rmtree(data / "home", ignore_errors=True)
            t = time.perf_counter()
            setup(data / "home", args.rows, args.jobs, args.distinct, args.labels)
            done.write_text(json.dumps(layout))
            print(f"setup: {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
        now = DAY + timedelta(days=2)
        if args.stage in ("all", "first"):
            for engine in args.engines.split(","):
                _first(data, engine, args.rows, now)
        if args.stage in ("all", "incremental"):
            for engine in ("summaries", "count"):
                if engine in args.engines.split(","):
                    _incremental(data, now, engine)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
