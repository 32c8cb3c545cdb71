"""Demo stage: the loop that acts. An update policy, set before the traffic shifts, retrains
the model when monitoring's alert fires: export of the labelled traffic, the retraining
job shipped with the demo (:mod:`vigil.demo.retrain`), the gate on held-out replayed
traffic, a shadow, a canary ramp, promotion; each transition printed as the server's policy
loop makes it, then the run's audit trail."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx
from rich.console import Console

from vigil.audit import AuditEvent
from vigil.console import shown, table, when
from vigil.demo._data import MODEL_NAME
from vigil.policy.config import parse_policy
from vigil.policy.runs import FINAL, Run, RunStore
from vigil.policy.store import PolicyStore

ENDPOINT = f"{MODEL_NAME}-live"
"""The policy's endpoint: clients call it, the rollout reconfigures it."""
ALERTS = ("dataset_drift", "accuracy_drop")
SHADOW_REQUESTS = 20
BURST = 5
"""Requests sent between two looks at the run while it shadows or ramps (~25 a second)."""
STEP_REQUESTS = 10
POLICY: dict[str, Any] = {
    "model": MODEL_NAME,
    "triggers": {"alerts": list(ALERTS)},
    "action": {
        "kind": "command",
        "argv": [sys.executable, "-m", "vigil.demo.retrain"],
        "timeout_s": 120,
    },
    # The served version must be beaten by 2 points of accuracy, significantly (McNemar).
    # A loaded laptop makes latency noisy: the latency guards are loose, as in a demo.
    "gate": {"min_improvement": 0.02, "max_latency_ratio": 20},
    "rollout": {
        "endpoint": ENDPOINT,
        "shadow": {
            "min_requests": SHADOW_REQUESTS,
            "min_duration_s": 1,
            # Since the shift the served version misreads about half the rows, so an honest
            # candidate disagrees with it often: the bound only stops one that answers the
            # opposite of it nearly always.
            "max_disagreement": 0.8,
            "max_latency_ratio": 20,
        },
        "steps": [
            {"percent": 50, "min_duration_s": 1, "min_requests": STEP_REQUESTS},
            {"percent": 100, "min_duration_s": 1, "min_requests": STEP_REQUESTS},
        ],
        "guards": {"min_requests": STEP_REQUESTS, "max_latency_ratio": 20},
        "timeout_s": 60,
    },
}
"""The demo's update policy: what ``vigil policy set breast-cancer -f policy.yaml`` would
store, with stages short enough for a demo (a real one shadows for minutes or hours)."""


def set_policy(v: Any, console: Console) -> None:
    """Store the demo's update policy (it creates the policy's endpoint)."""
    PolicyStore(v).set(parse_policy(POLICY), actor="demo")
    console.print(
        f"   update policy for {MODEL_NAME}: when {' or '.join(ALERTS)} fires, retrain with "
        "[bold]python -m vigil.demo.retrain[/] on the exported traffic, then gate, shadow "
        f"and canary it on endpoint {ENDPOINT}",
        soft_wrap=True,
    )


def follow(v: Any, url: str, rows: Any, console: Console, timeout: float = 120.0) -> dict[str, Any]:
    """Follow the run the alert started until it ends, printing each transition from its
    audit row, and sending ``rows`` (one per request, one user each) through the policy's
    endpoint while the candidate shadows or ramps; then print the run's audit trail."""

    runs = RunStore(v.database)
    run = _wait_for_run(runs, timeout=30.0)
    records = rows.to_dict(orient="records")
    printed: set[int] = set()
    sent = 0
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=30) as http:
        while True:
            run = runs.get(run.run_id)
            for event in _events(v, run):
                if event.id not in printed:
                    printed.add(event.id)
                    _describe(event, run, console)
            if run.state in FINAL:
                break
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"demo: the policy run {run.run_id} did not end in {timeout:.0f} s "
                    f"(it is {run.state}); see {v.settings.home / 'demo-server.log'}"
                )
            if run.state in ("shadow", "canary"):
                # A few users at a time, then a look: the stage moves on between bursts.
                for _ in range(BURST):
                    row = records[sent % len(records)]
                    r = http.post(
                        f"/v1/endpoints/{ENDPOINT}/predict",
                        json={"inputs": row},
                        headers={"x-unit-id": f"live-{sent}", "x-request-id": f"live-{sent}"},
                    )
                    r.raise_for_status()
                    sent += 1
            time.sleep(0.2)
    events = _events(v, run)
    table(
        f"Audit trail of policy run {run.run_id} (vigil audit {MODEL_NAME})",
        ["time", "actor", "action", "entity", "from", "to"],
        [
            (when(e.at), e.actor, e.action, e.entity_name, _state(e.before), _to(e))
            for e in [*_policy_set(v), *events]
        ],
    )
    production = v.registry.resolve(f"models:/{MODEL_NAME}@production")
    console.print(
        f"   the run ended [bold]{run.state}[/]; models:/{MODEL_NAME}@production is version "
        f"{production.version}; {sent} requests went through {ENDPOINT} while it shadowed "
        "and ramped",
        soft_wrap=True,
    )
    return {
        "run_id": run.run_id,
        "state": run.state,
        "served_version": run.served_version,
        "candidate_version": run.candidate_version,
        "production": production.version,
        "actions": [e.action for e in events],
        "export": run.data.get("export"),
        "gate": (run.data.get("gate") or {}).get("replay"),
        "shadow": (run.data.get("shadow") or {}).get("evidence"),
        "requests": sent,
    }


def _wait_for_run(runs: RunStore, timeout: float) -> Run:
    """The server's policy loop starts the run within a tick of the alert."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runs.list(MODEL_NAME, limit=1)
        if found:
            return found[0]
        time.sleep(0.1)
    raise SystemExit(f"demo: the alert did not start a run of {MODEL_NAME}'s policy")


def _events(v: Any, run: Run) -> list[AuditEvent]:
    """The run's audit rows, oldest first: its own (``policy.*``) and its canary's."""
    return [
        e
        for e in reversed(v.registry.audit(MODEL_NAME, limit=500))
        if (e.action.startswith("policy.") and e.entity_name == run.run_id)
        or (e.action.startswith("canary.") and e.entity_name == ENDPOINT and e.at >= run.created_at)
    ]


def _policy_set(v: Any) -> list[AuditEvent]:
    """The audit row of the policy the run followed (the newest ``policy.set``)."""
    found = [e for e in v.registry.audit(MODEL_NAME, limit=500) if e.action == "policy.set"]
    return found[:1]


def _to(event: AuditEvent) -> str:
    if event.action.startswith("canary."):
        return _state(event.after)
    if event.action == "policy.set":
        return "enabled"
    return event.action.split(".", 1)[1]


def _state(record: dict[str, Any] | None) -> str:
    if not record:
        return ""
    if "state" in record:
        return str(record["state"])
    if "percent" in record:
        return f"{record.get('status', '')} {record['percent']:g}%"
    return ""


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _describe(event: AuditEvent, run: Run, console: Console) -> None:
    """One line (or a few) per transition, with the numbers its audit row holds."""
    after: dict[str, Any] = event.after or {}
    action = event.action
    say: list[str] = []
    if action == "policy.triggered":
        trigger = after.get("trigger") or {}
        say.append(
            f"triggered by the alert {trigger.get('rule')} (event {trigger.get('event')}): "
            f"{shown(str(trigger.get('summary', '')))}"
        )
    elif action == "policy.exporting":
        say.append("exporting the captured features joined with the labels that came back")
    elif action == "policy.training":
        m = after.get("export") or {}
        coverage = m.get("label_coverage")
        say.append(
            f"exported {m.get('rows')} rows to train on and held {m.get('held_out_rows')} out "
            f"for the gate: {m.get('labelled_rows')} labelled of {m.get('answered_rows')} "
            f"answered rows (label coverage {_pct(coverage)})"
        )
        say.append(f"training: python {' '.join(POLICY['action']['argv'][1:])}")
    elif action == "policy.gating":
        say.append(
            f"the job registered models:/{MODEL_NAME}/{after.get('candidate_version')} as the "
            "candidate"
        )
    elif action in ("policy.shadow", "policy.canary", "policy.rejected") and "gate" in after:
        g = (after["gate"] or {}).get("replay") or {}
        test = g.get("test") or {}
        verdict = "passed" if g.get("passed") else "failed"
        say.append(
            f"gate {verdict} on {g.get('rows')} held-out replayed rows: accuracy "
            f"{g.get('current', 0):.3f} served, {g.get('candidate', 0):.3f} candidate "
            f"(McNemar p {test.get('p_value', float('nan')):.2g}; at least "
            f"+{g.get('min_improvement', 0):g} needed)"
        )
        if action == "policy.shadow":
            say.append(
                f"shadow: the candidate answers a copy of each request to {ENDPOINT} "
                f"(at least {SHADOW_REQUESTS})"
            )
    if action == "policy.canary" and "shadow" in after:
        s = (after["shadow"] or {}).get("evidence") or {}
        say.append(
            f"shadow passed: {s.get('candidate_requests', 0):.0f} copies answered, errors "
            f"{_pct(s.get('candidate_error_rate'))}, disagreement with the served version "
            f"{_pct(s.get('disagreement'))}"
        )
        say.append(f"canary: the candidate takes a growing share of {ENDPOINT}'s users")
    elif action.startswith("canary."):
        evidence = after.get("evidence") or {}
        n = evidence.get("canary_requests")
        seen = f" after {n:.0f} of its requests" if isinstance(n, int | float) else ""
        alias = after.get("alias") or {}
        moved = (
            f"; alias {alias.get('alias')} moved to version {alias.get('version')}"
            if alias.get("alias")
            else ""
        )
        say.append(
            f"canary {action.split('.', 1)[1]}: {after.get('percent', 0):g}% of users{seen}{moved}"
        )
    elif action == "policy.promoted":
        say.append(
            f"promoted: models:/{MODEL_NAME}/{run.candidate_version} serves production, "
            f"in place of version {run.served_version}"
        )
    elif action in ("policy.rejected", "policy.rolled_back", "policy.failed"):
        say.append(
            f"{action.split('.', 1)[1].replace('_', ' ')}: {shown(str(after.get('error') or ''))}"
        )
    for line in say:
        console.print(f"   [bold]{action}[/] {line}" if line is say[0] else f"      {line}")
