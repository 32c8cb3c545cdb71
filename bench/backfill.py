"""Backfills: the single-process engine against the Ray engine on a local instance.

``python -m bench.backfill --parts 16 --rounds 3 --num-cpus 2``

Parts of 100,000 captured rows (20 numeric and 5 categorical features, as
:mod:`bench.monitor_scale` writes them), one a day, in a local store; each round builds
every part's summaries with the local engine, then with the Ray engine (summaries removed
before each run, so both build everything), interleaved. Ray is started once, before the
rounds (on a cluster it is up already); its start is reported apart. Prints one JSON line
per run and the median ratio local / Ray.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.monitor_scale import DAY, PART_ROWS, _app, _model, write_part


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args(argv)

    import ray

    from vigil.batch.backfill import Engine, backfill

    home = Path(tempfile.mkdtemp(prefix="vigil-bench-backfill-"))
    try:
        app = _app(home)
        model, reference = _model()
        app.register(model, name="m", reference=reference, target="label")
        for k in range(args.parts):
            write_part(app, model, PART_ROWS, seed=1 + k, day=DAY + timedelta(days=k))
        started = time.perf_counter()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        print(json.dumps({"ray_init_s": round(time.perf_counter() - started, 2)}), flush=True)
        backfill(app, "m", engine="ray")  # workers started and warm, as on a live cluster
        times: dict[str, list[float]] = {"local": [], "ray": []}
        for round_ in range(args.rounds):
            engines: tuple[Engine, ...] = ("local", "ray")
            for engine in engines:
                shutil.rmtree(Path(app.artifacts.root) / "summaries", ignore_errors=True)
                done = backfill(app, "m", engine=engine)
                assert done.count("built") == args.parts, done.to_dict()
                times[engine].append(done.seconds)
                line = {"round": round_, "engine": engine, "parts": args.parts}
                line |= {"rows": done.rows, "seconds": round(done.seconds, 2)}
                line["rows_per_s"] = round(done.rows / done.seconds)
                print(json.dumps(line), flush=True)
        ray.shutdown()
        local, on_ray = statistics.median(times["local"]), statistics.median(times["ray"])
        summary = {"median_local_s": round(local, 2), "median_ray_s": round(on_ray, 2)}
        summary["speedup"] = round(local / on_ray, 2)
        print(json.dumps(summary), flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
