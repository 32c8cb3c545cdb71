"""The update-policy engine's cost on the serving hot path (issue 16).

The same registry-backed server as :mod:`bench.routing` (one worker pinned to CPU 0, wrk
on CPU 1, 32 connections, capture and metrics on), started twice over one home that holds
a policy for the served model (triggered by a drift alert or a yearly schedule, so no run
starts during the measurement):

* ``policy-off``: ``VIGIL_POLICY_ENABLED=false``, no policy loop in the worker;
* ``policy-on``: the loop on, ticking every 0.5 s (``VIGIL_POLICY_INTERVAL_S``, 20 times
  as often as the default): each tick reads the policies, the alerts since its cursor and
  the schedule, under the policy lease.

Both answer ``POST /v1/models/model/predict``, interleaved over the rounds (a server per
point, started fresh). The policy engine does no work per request; what it could cost is
its loop's share of the worker's event loop and CPU.

Run: ``python -m bench.policy_cost [--rounds N] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench.routing import CONNECTIONS, RoutingServer, _measure, prepare
from bench.serving.apps import FEATURES
from bench.serving.runner import Result, one_row, wrk_path


def _policy(home: Path) -> None:
    from vigil.app import Vigil
    from vigil.policy.config import parse_policy
    from vigil.policy.store import PolicyStore
    from vigil.settings import load_settings

    vigil = Vigil(load_settings(home=home))
    policy = {
        "model": "model",
        "triggers": {"alerts": ["dataset_drift"], "schedule": "0 0 1 1 *"},
        "action": {"kind": "command", "argv": ["true"]},
    }
    PolicyStore(vigil).set(parse_policy(policy), actor="bench")
    vigil.database.dispose()


def _serve(home: Path, *, loop: bool) -> RoutingServer:
    saved = {k: os.environ.get(k) for k in ("VIGIL_POLICY_ENABLED", "VIGIL_POLICY_INTERVAL_S")}
    os.environ["VIGIL_POLICY_ENABLED"] = "true" if loop else "false"
    os.environ["VIGIL_POLICY_INTERVAL_S"] = "0.5"
    try:
        return RoutingServer(home)  # it copies the environment as it starts
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(rounds: int, seconds: float, warmup: float) -> dict[str, float]:
    wrk_path()
    row = dict(zip(FEATURES, one_row().tolist(), strict=True))
    body = json.dumps({"instances": [row]}).encode()
    path = "/v1/models/model/predict"
    print(
        f"policy engine cost ({seconds:.0f} s per point, {CONNECTIONS} connections, "
        f"{rounds} interleaved rounds)",
        flush=True,
    )
    results: dict[str, list[Result]] = {"policy-off": [], "policy-on": []}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-policy-") as tmp:
        home = Path(tmp) / "home"
        prepare(home)
        _policy(home)
        for _ in range(rounds):
            for name in ("policy-off", "policy-on"):
                with _serve(home, loop=name == "policy-on") as server:
                    results[name].append(_measure(name, server, path, body, seconds, warmup))
    on, off = results["policy-on"], results["policy-off"]
    throughput = [
        a.requests_per_second / b.requests_per_second for a, b in zip(on, off, strict=True)
    ]
    cpu = [
        (a.cpu_us_per_request or 0.0) / (b.cpu_us_per_request or 1.0)
        for a, b in zip(on, off, strict=True)
    ]
    summary = {
        "throughput_on_over_off_median": statistics.median(throughput),
        "cpu_per_request_on_over_off_median": statistics.median(cpu),
    }
    print(
        f"policy loop on / off: throughput {summary['throughput_on_over_off_median']:.3f}x "
        f"(rounds {', '.join(f'{t:.3f}' for t in throughput)}), server CPU per request "
        f"{summary['cpu_per_request_on_over_off_median']:.3f}x "
        f"(rounds {', '.join(f'{c:.3f}' for c in cpu)})"
    )
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.policy_cost")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    args = parser.parse_args()
    if args.quick:
        main(2, 3.0, 1.0)
    else:
        main(args.rounds, args.seconds, 2.0)
