"""Throughput of 1, 2 and 3 replicas of ``vigil serve`` behind HAProxy, and memory per worker.

The cluster of the tests (:func:`tests.servers.vigil_cluster`): three ``vigil serve``
processes of two workers each, on one PostgreSQL, one Redis and one S3-compatible server
(moto), behind Debian's HAProxy checking ``/readyz``; capture on (each replica's log on its
own directory, compacted to S3), as deployed. One logistic regression (20 features) is
served as ``model@production``.

The three sizes run on the same processes: HAProxy's admin socket takes replicas out of
and back into the backend (``disable server`` / ``enable server``), so every size is measured
on warm workers. wrk (two threads, 32 connections) drives ``POST /v1/models/model/predict``
through HAProxy for ``--seconds`` per point; the sizes are interleaved in each of ``--rounds``
rounds (in a new order each round) and compared with 1 replica in the same round, so the
machine's other load colours every size alike. Nothing is pinned: on a machine with fewer
cores than workers, replicas add processes, not CPU, and the figures say so.

Memory: after the load, the resident (RSS) and proportional (PSS: shared pages divided
among the processes sharing them) set size of every worker process and of each replica's
supervisor, from ``/proc/<pid>/smaps_rollup``.

Run (the machine is shared: one benchmark at a time):
``flock /tmp/vigil-bench.lock python -m bench.replicas [--quick]``; writes
``bench/results/replicas.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.serving.apps import FEATURES, training_data
from bench.serving.runner import lua_script, parse_wrk, wrk_path

CONNECTIONS = 32
SIZES = (1, 2, 3)


def register(settings: dict[str, Any], home: Path) -> list[float]:
    """Register the served model on the shared backends; one row of its features."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from vigil.app import Vigil
    from vigil.settings import load_settings

    vigil = Vigil(load_settings(home=home, **settings))
    X, y = training_data()
    frame = pd.DataFrame(X, columns=FEATURES).assign(target=y)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    vigil.register(model, name="model", reference=frame, target="target", alias="production")
    vigil.database.dispose()
    return [float(v) for v in X[0]]


def wrk(url: str, script: str, seconds: float) -> str:
    import subprocess

    command = [wrk_path(), "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s"]
    return subprocess.run(
        [*command, "--latency", "-s", script, url], check=True, capture_output=True, text=True
    ).stdout


def use(cluster: Any, size: int) -> None:
    """Let HAProxy send traffic to the first ``size`` replicas only."""
    for n, replica in enumerate(cluster.replicas):
        verb = "enable" if n < size else "disable"
        cluster.proxy.command(f"{verb} server replicas/{replica.name}")
    wanted = {r.name: ("UP" if n < size else "MAINT") for n, r in enumerate(cluster.replicas)}
    cluster.proxy.wait_status(wanted)


def memory(pid: int) -> dict[str, int]:
    """RSS and PSS of one process, in bytes (``smaps_rollup``)."""
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss"):
            found[key.lower()] = int(value.split()[0]) * 1024
    return found


def workers_of(pid: int) -> list[int]:
    """The worker processes of one ``vigil serve`` (its children, less multiprocessing's
    resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    found = []
    for child in (int(p) for p in path.read_text().split()):
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"resource_tracker" not in command:
            found.append(child)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1 round of 4 s per size")
    args = parser.parse_args()
    rounds, seconds = (1, 4.0) if args.quick else (args.rounds, args.seconds)
    wrk_path()

    from tests.servers import postgres_server, redis_server, s3_server, vigil_cluster

    results: dict[int, list[float]] = {size: [] for size in SIZES}
    ratios: dict[int, list[float]] = {size: [] for size in SIZES}
    latency: dict[int, list[tuple[float, float]]] = {size: [] for size in SIZES}
    errors = 0
    with (
        tempfile.TemporaryDirectory(prefix="vigil-bench-replicas-") as tmp,
        postgres_server() as postgres,
        redis_server(Path(tmp)) as redis,
        s3_server(Path(tmp)) as s3,
    ):
        base = Path(tmp)
        settings = {
            "database_url": postgres.create_database("bench"),
            "artifact_url": s3.url(f"bench-{uuid.uuid4().hex[:8]}"),
            "s3_endpoint_url": s3.endpoint_url,
            "redis_url": redis.url(),
        }
        from vigil.storage.sql import Database

        Database(settings["database_url"]).migrate()
        row = register(settings, base / "control")
        body = json.dumps({"inputs": dict(zip(FEATURES, row, strict=True))}).encode()
        script = lua_script("/v1/models/model/predict", body)
        started = time.perf_counter()
        with vigil_cluster(base, settings, replicas=max(SIZES), workers=2) as cluster:
            print(f"cluster ready in {time.perf_counter() - started:.1f} s", flush=True)
            wrk(cluster.url, script, 3)  # warm every worker
            rng = random.Random(0)
            for n in range(rounds):
                order = list(SIZES)
                rng.shuffle(order)
                found: dict[int, float] = {}
                for size in order:
                    use(cluster, size)
                    rps, p50, p99, errs = parse_wrk(wrk(cluster.url, script, seconds))
                    errors += errs
                    found[size] = rps
                    results[size].append(rps)
                    latency[size].append((p50, p99))
                    print(
                        f"  round {n + 1} {size} replica(s): {rps:8.0f} req/s  p50 {p50:6.2f} ms"
                        f"  p99 {p99:7.2f} ms  errors {errs}",
                        flush=True,
                    )
                for size in SIZES:
                    ratios[size].append(found[size] / found[1])
            use(cluster, max(SIZES))
            workers = []
            supervisors = []
            for replica in cluster.replicas:
                assert replica.process is not None
                supervisors.append(memory(replica.process.pid))
                workers.extend(memory(pid) for pid in workers_of(replica.process.pid))
    summary = {
        "connections": CONNECTIONS,
        "seconds": seconds,
        "rounds": rounds,
        "errors": errors,
        "sizes": {
            size: {
                "requests_per_second_median": statistics.median(results[size]),
                "ratio_to_one_replica_median": statistics.median(ratios[size]),
                "p50_ms_median": statistics.median(p for p, _ in latency[size]),
                "p99_ms_median": statistics.median(p for _, p in latency[size]),
                "runs": results[size],
            }
            for size in SIZES
        },
        "worker_memory_bytes": {
            "count": len(workers),
            "rss_median": statistics.median(w["rss"] for w in workers),
            "pss_median": statistics.median(w["pss"] for w in workers),
            "rss_max": max(w["rss"] for w in workers),
        },
        "supervisor_memory_bytes": {
            "rss_median": statistics.median(s["rss"] for s in supervisors),
            "pss_median": statistics.median(s["pss"] for s in supervisors),
        },
    }
    print(json.dumps(summary, indent=2))
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "replicas.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
