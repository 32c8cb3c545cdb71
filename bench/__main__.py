"""Run the benchmarks: ``python -m bench [registration|drift|profile_10m|bandits|serving|
serving.coldstart|startup|capture|routing|batch|calibration|soak|replicas|monitor_scale|
replay|backfill|explain|policy_cost|console|encryption|fairness_summaries|
experiment_status|sustained|monitor_isolation ...] [--quick]``.

Each benchmark runs as its own process (``python -m bench.NAME``) so one's memory and
threads do not colour another's figures. ``--quick`` shortens the long ones.
"""

from __future__ import annotations

import subprocess
import sys
import time

ALL = (
    "registration",
    "drift",
    "profile_10m",
    "bandits",
    "serving",
    "serving.coldstart",
    "startup",
    "capture",
    "routing",
    "batch",
    "calibration",
    "soak",
    "replicas",
    "monitor_scale",
    "replay",
    "backfill",
    "explain",
    "policy_cost",
    "console",
    "encryption",
    "fairness_summaries",
    "experiment_status",
    "sustained",
    "monitor_isolation",
)
# Arguments every run of a benchmark gets (capture: the serving comparison, not only the
# append micro-benchmark).
ARGS = {"capture": ["--serving"]}
QUICK_ARGS = {
    "registration": ["--repeat", "1"],
    "drift": ["--rows", "200000"],
    "profile_10m": ["--quick"],
    "bandits": ["--seeds", "3"],
    "serving": ["--quick"],
    "serving.coldstart": ["--quick"],
    "startup": ["--quick"],
    "capture": ["--quick"],
    "routing": ["--quick"],
    "batch": ["--quick"],
    "calibration": ["--quick"],
    "soak": ["--quick"],
    "replicas": ["--quick"],
    "monitor_scale": ["--rows", "300000"],
    "replay": ["--rows", "200000", "--rounds", "1"],
    "backfill": ["--parts", "4", "--rounds", "1"],
    "explain": ["--quick"],
    "policy_cost": ["--quick"],
    "console": ["--quick"],
    "encryption": ["--quick"],
    "fairness_summaries": ["--rows", "50000", "--rounds", "3"],
    "experiment_status": ["--rows", "300000", "--repeat", "1"],
    "sustained": ["--quick"],
    "monitor_isolation": ["--quick"],
}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")] or list(ALL)
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
        return 2
    failed = []
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        started = time.perf_counter()
        args = [*ARGS.get(name, []), *(QUICK_ARGS[name] if quick else [])]
        code = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *args], check=False
        ).returncode
        print(f"(bench.{name} took {time.perf_counter() - started:.0f} s, exit {code})", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
