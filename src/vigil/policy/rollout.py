"""The rollout of a candidate through the policy's endpoint: shadow, then canary.

The endpoint (``rollout.endpoint``, by default ``<model>-live``) is where clients send the
model's traffic (``POST /v1/endpoints/{endpoint}/predict``). Between runs it serves the
served alias alone (:func:`idle_config`). A run rolls out by replacing its configuration:

* **shadow** (:func:`shadow_config`): the served version answers, the candidate gets a
  copy of every request off the hot path (:mod:`vigil.serving.endpoints.shadow`).
  :func:`judge_shadow` compares them once the candidate has answered ``min_requests``
  copies over ``min_duration_s``: its error rate, its median latency over the served
  version's (both from the endpoint's shared counters, counted since the stage began), and
  the share of shadowed rows where its prediction differs from the one served (from the
  inference log, which holds both answers under related request ids);
* **canary** (:func:`canary_config`): the existing canary ramp with its guards and
  automatic rollback (:mod:`vigil.experiments.canary`); it moves the served alias to the
  candidate when it completes. :func:`canary_outcome` reads where it stands.

After the run, successful or not, the endpoint goes back to :func:`idle_config`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vigil.experiments.canary import policy_fingerprint
from vigil.experiments.config import EndpointConfig, parse_endpoint
from vigil.experiments.state import VariantStats

if TYPE_CHECKING:
    from vigil.policy.config import PolicyConfig, ShadowStage
    from vigil.services import Services

__all__ = [
    "ShadowJudgement",
    "canary_config",
    "canary_outcome",
    "idle_config",
    "judge_shadow",
    "shadow_config",
]

SERVED = "served"
CANDIDATE = "candidate"
# How long after a ramp ended a reader waits for its controller to finish its side effects.
SETTLE_GRACE_S = 60.0


def _variants(model: str, served: int, candidate: int) -> list[dict[str, str]]:
    return [
        {"name": SERVED, "model": f"models:/{model}/{served}"},
        {"name": CANDIDATE, "model": f"models:/{model}/{candidate}"},
    ]


def idle_config(policy: PolicyConfig) -> EndpointConfig:
    """The endpoint between runs: the served alias answers everything."""
    return parse_endpoint(
        {
            "name": policy.endpoint,
            "variants": [
                {"name": SERVED, "model": f"models:/{policy.model}@{policy.served_alias}"}
            ],
            "policy": {"kind": "fixed", "variant": SERVED},
        }
    )


def shadow_config(policy: PolicyConfig, served: int, candidate: int) -> EndpointConfig:
    return parse_endpoint(
        {
            "name": policy.endpoint,
            "variants": _variants(policy.model, served, candidate),
            "policy": {"kind": "shadow", "primary": SERVED, "shadows": [CANDIDATE]},
        }
    )


def canary_config(policy: PolicyConfig, served: int, candidate: int) -> EndpointConfig:
    return parse_endpoint(
        {
            "name": policy.endpoint,
            "variants": _variants(policy.model, served, candidate),
            "policy": {
                "kind": "canary",
                "stable": SERVED,
                "canary": CANDIDATE,
                "steps": [s.model_dump() for s in policy.rollout.steps],
                "guards": policy.rollout.guards.model_dump(),
                "promote_alias": policy.served_alias,
            },
        }
    )


def canary_outcome(
    config: EndpointConfig, control: Mapping[str, Any], now: float | None = None
) -> str | None:
    """``promoted``, ``rolled_back``, or ``None`` while this canary still ramps (a control
    record of another configuration counts as not started).

    The ramp's end counts once the controller that ended it has done what follows (moved
    the alias, audited, alerted: ``applied_at``), or ``SETTLE_GRACE_S`` after the end if
    that controller died in between."""
    if control.get("fingerprint") != policy_fingerprint(config):
        return None
    status = control.get("status", "ramping")
    if status not in ("promoted", "rolled_back"):
        return None
    now = time.time() if now is None else now
    if "applied_at" not in control and now - float(control.get("ended_at", 0)) < SETTLE_GRACE_S:
        return None
    return str(status)


@dataclass(frozen=True)
class ShadowJudgement:
    """Whether the shadow stage is over, and how it went."""

    done: bool
    passed: bool
    reason: str
    evidence: dict[str, float | None]


def _since(now: VariantStats, base: Mapping[str, float]) -> VariantStats:
    counters = now.counters()
    if any(counters.get(k, 0.0) < v for k, v in base.items()):
        return now  # the counters were reset: all of them belong to this stage
    return VariantStats.from_counters({k: v - base.get(k, 0.0) for k, v in counters.items()})


def disagreement(
    app: Services, model: str, endpoint: str, since: datetime
) -> tuple[float | None, int]:
    """Share of the rows shadowed since ``since`` where the candidate's prediction differs
    from the one served, and how many rows were compared."""
    from vigil.capture.reader import read_capture

    rows = read_capture(model, since, None, store=app.artifacts, log_dir=app.capture_dir)
    if rows.empty:
        return None, 0
    rows = rows[(rows["endpoint"] == endpoint) & (rows["status"] < 400)]
    ids = rows["request_id"].astype(str)
    marker = f":shadow:{CANDIDATE}"
    shadow = rows[ids.str.endswith(marker)].assign(
        request_id=lambda f: f["request_id"].astype(str).str[: -len(marker)]
    )
    primary = rows[(rows["variant"] == SERVED) & ~ids.str.contains(":shadow:")]
    pairs = primary.merge(shadow, on=["request_id", "row"], suffixes=("_served", "_candidate"))
    if pairs.empty:
        return None, 0
    differ = pairs["prediction_served"].astype(str) != pairs["prediction_candidate"].astype(str)
    return float(differ.mean()), len(pairs)


def judge_shadow(
    stage: ShadowStage,
    stats: Mapping[str, VariantStats],
    base: Mapping[str, Mapping[str, float]],
    elapsed_s: float,
    disagreement_rate: float | None,
) -> ShadowJudgement:
    """The shadow stage's verdict from the counters since it began (pure)."""
    served = _since(stats.get(SERVED) or VariantStats(), base.get(SERVED, {}))
    candidate = _since(stats.get(CANDIDATE) or VariantStats(), base.get(CANDIDATE, {}))
    median_c = candidate.quantile_ms(0.5) if candidate.requests else float("nan")
    median_s = served.quantile_ms(0.5) if served.requests else float("nan")
    ratio = max(median_c, 1.0) / max(median_s, 1.0) if served.requests else None
    evidence: dict[str, float | None] = {
        "candidate_requests": float(candidate.requests),
        "served_requests": float(served.requests),
        "candidate_error_rate": candidate.error_rate if candidate.requests else None,
        "latency_ratio": ratio,
        "disagreement": disagreement_rate,
        "elapsed_s": elapsed_s,
    }
    if candidate.requests < stage.min_requests or elapsed_s < stage.min_duration_s:
        return ShadowJudgement(False, False, "shadowing", evidence)
    if candidate.error_rate > stage.max_error_rate:
        return ShadowJudgement(
            True,
            False,
            f"candidate error rate {candidate.error_rate:.1%} in shadow exceeds "
            f"{stage.max_error_rate:.1%}",
            evidence,
        )
    if ratio is not None and ratio > stage.max_latency_ratio:
        return ShadowJudgement(
            True,
            False,
            f"candidate median latency is {ratio:.1f}x the served version's "
            f"(allowed {stage.max_latency_ratio:g}x)",
            evidence,
        )
    if stage.max_disagreement is not None:
        if disagreement_rate is None:
            return ShadowJudgement(False, False, "waiting for shadowed rows in the log", evidence)
        if disagreement_rate > stage.max_disagreement:
            return ShadowJudgement(
                True,
                False,
                f"candidate disagrees with the served version on {disagreement_rate:.1%} of "
                f"shadowed rows (allowed {stage.max_disagreement:.1%})",
                evidence,
            )
    return ShadowJudgement(
        True,
        True,
        f"{candidate.requests} shadowed requests in {elapsed_s:.0f} s within the limits",
        evidence,
    )
