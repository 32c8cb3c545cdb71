"""From ``vigil endpoint create|update`` options to the endpoint's JSON document.

The options are turned into exactly the document the admin REST API takes (``name``,
``variants``, ``policy``, ``unit``, ``salt``, ``alert_webhooks``), which
:func:`~vigil.experiments.config.parse_endpoint` then checks; so the CLI and the API refuse
the same configurations with the same messages. Options that do not apply to the chosen
policy are refused rather than silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vigil.errors import InvalidParameterError

POLICIES = ("fixed", "split", "canary", "shadow", "epsilon_greedy", "ucb1", "thompson")
BANDITS = ("epsilon_greedy", "ucb1", "thompson")

# Which options make sense with which policy (anything else is refused, not ignored).
_APPLIES: dict[str, set[str]] = {
    "fixed": {"primary"},
    "split": {"weight"},
    "canary": {
        "stable",
        "canary",
        "canary_steps",
        "step_duration",
        "step_requests",
        "max_error_rate_increase",
        "max_latency_ratio",
        "max_quality_drop",
        "guard_min_requests",
        "promote_alias",
    },
    "shadow": {"primary", "shadow", "sample_rate"},
    **{kind: {"epsilon", "reward", "refresh"} for kind in BANDITS},
}


def _bad(message: str, option: str | None = None) -> InvalidParameterError:
    return InvalidParameterError(message, detail={"option": option} if option else None)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise _bad(f"--{option} takes NAME=VALUE, got {item!r}", option)
        out[key.strip()] = value.strip()
    return out


def _number(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _bad(f"--{option}: {text!r} is not a number", option) from None


def _read_file(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise _bad(f"--file {str(path)!r} is not a file", "file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        reason = str(exc).replace("\n", " ")
        raise _bad(f"--file {path.name} is not valid {kind}: {reason}", "file") from None
    if not isinstance(data, dict):
        raise _bad(f"--file {path.name}: expected a mapping (name, variants, policy...)", "file")
    return data


def _build_policy(
    current: dict[str, Any] | None, variants: list[str], given: dict[str, Any]
) -> dict[str, Any]:
    """The policy document: ``current`` with the options in ``given`` applied."""
    kind = given.get("policy") or (current or {}).get("kind")
    if kind is None:
        kind = "split" if len(variants) > 1 else "fixed"
    if kind not in POLICIES:
        raise _bad(f"--policy must be one of {', '.join(POLICIES)}, got {kind!r}", "policy")
    policy: dict[str, Any] = dict(current) if current and current.get("kind") == kind else {}
    policy["kind"] = kind
    stray = sorted(k for k in given if k != "policy" and k not in _APPLIES[kind])
    if stray:
        shown = ", ".join("--" + k.replace("_", "-") for k in stray)
        raise _bad(f"{shown} does not apply to a {kind} policy", stray[0])
    first, second = variants[0], variants[1] if len(variants) > 1 else variants[0]
    if kind == "fixed":
        policy["variant"] = given.get("primary") or policy.get("variant") or first
    elif kind == "split":
        weights = given.get("weight")
        if weights:
            policy["weights"] = {k: _number(v, "weight") for k, v in weights.items()}
        else:
            policy.setdefault("weights", dict.fromkeys(variants, 1.0))
    elif kind == "canary":
        policy["stable"] = given.get("stable") or policy.get("stable") or first
        policy["canary"] = given.get("canary") or policy.get("canary") or second
        _canary_steps(policy, given)
        guards = dict(policy.get("guards") or {})
        for option, key in (
            ("max_error_rate_increase", "max_error_rate_increase"),
            ("max_latency_ratio", "max_latency_ratio"),
            ("max_quality_drop", "max_quality_drop"),
            ("guard_min_requests", "min_requests"),
        ):
            if given.get(option) is not None:
                guards[key] = given[option]
        policy["guards"] = guards
        if given.get("promote_alias") is not None:
            alias = given["promote_alias"]
            policy["promote_alias"] = None if alias.lower() in ("", "none") else alias
    elif kind == "shadow":
        policy["primary"] = given.get("primary") or policy.get("primary") or first
        shadows = given.get("shadow") or policy.get("shadows")
        policy["shadows"] = shadows or [v for v in variants if v != policy["primary"]]
        if given.get("sample_rate") is not None:
            policy["sample_rate"] = given["sample_rate"]
    else:
        for option, key in (("epsilon", "epsilon"), ("reward", "reward"), ("refresh", "refresh_s")):
            if given.get(option) is not None:
                policy[key] = given[option]
    return policy


def _canary_steps(policy: dict[str, Any], given: dict[str, Any]) -> None:
    steps_text = given.get("canary_steps")
    old = policy.get("steps") or []
    if steps_text is not None:
        percents = [_number(p, "canary-steps") for p in steps_text.split(",") if p.strip()]
        steps: list[dict[str, Any]] = [{"percent": p} for p in percents]
    elif old:
        steps = [dict(s) for s in old]
    else:
        steps = [{"percent": p} for p in (5, 25, 50, 100)]
    if given.get("step_duration") is not None:
        for s in steps:
            s["min_duration_s"] = given["step_duration"]
    if given.get("step_requests") is not None:
        for s in steps:
            s["min_requests"] = given["step_requests"]
    policy["steps"] = steps


def endpoint_document(
    name: str | None, current: dict[str, Any] | None, opts: dict[str, Any]
) -> dict[str, Any]:
    """The endpoint document from ``current`` (None: a new endpoint) and the options."""
    file = opts.pop("file")
    given = {k: v for k, v in opts.items() if v not in (None, [], {})}
    if file is not None:
        if given:
            shown = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
            raise _bad(
                f"--file replaces the whole configuration; do not combine it with {shown}", "file"
            )
        loaded = _read_file(file)
        if name is not None and loaded.setdefault("name", name) != name:
            raise _bad(f"the file describes endpoint {loaded['name']!r}, not {name!r}", "file")
        return loaded
    if name is None:
        raise _bad("name the endpoint (vigil endpoint create NAME ...) or give --file")
    data: dict[str, Any] = dict(current) if current else {"name": name}
    variants = [dict(v) for v in data.get("variants", [])]
    for vname, model in _pairs(given.pop("variant", None), "variant").items():
        for v in variants:
            if v["name"] == vname:
                v["model"] = model
                break
        else:
            variants.append({"name": vname, "model": model})
    if not variants:
        raise _bad(
            "give at least one --variant NAME=models:/MODEL@ALIAS (or NAME=models:/MODEL/N)",
            "variant",
        )
    data["variants"] = variants
    if "weight" in given:
        given["weight"] = _pairs(given["weight"], "weight")
    unit = dict(data.get("unit") or {})
    if "unit_header" in given:
        header = given.pop("unit_header")
        unit["header"] = None if header.lower() == "none" else header
    if "unit_field" in given:
        unit["field"] = given.pop("unit_field")
    if unit:
        data["unit"] = unit
    if "salt" in given:
        data["salt"] = given.pop("salt")
    if "alert_webhook" in given:
        data["alert_webhooks"] = given.pop("alert_webhook")
    touches_policy = current is None or bool(given)
    if touches_policy:
        data["policy"] = _build_policy(
            current.get("policy") if current else None, [v["name"] for v in variants], given
        )
    return data


def collect_options(
    file: Path | None,
    variant: list[str] | None,
    policy: str | None,
    weight: list[str] | None,
    primary: str | None,
    shadow: list[str] | None,
    sample_rate: float | None,
    stable: str | None,
    canary: str | None,
    canary_steps: str | None,
    step_duration: float | None,
    step_requests: int | None,
    max_error_rate_increase: float | None,
    max_latency_ratio: float | None,
    max_quality_drop: float | None,
    guard_min_requests: int | None,
    promote_alias: str | None,
    epsilon: float | None,
    reward: str | None,
    refresh: float | None,
    unit_header: str | None,
    unit_field: str | None,
    salt: str | None,
    alert_webhook: list[str] | None,
) -> dict[str, Any]:
    return dict(locals())
