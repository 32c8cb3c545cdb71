"""From ``vigil endpoint create|update`` options to the endpoint's JSON document.

The options are turned into exactly the document the admin REST API takes (``name``,
``variants``, ``policy``, ``unit``, ``salt``, ``alert_webhooks``), which
:func:`~vigil.experiments.config.parse_endpoint` then checks; so the CLI and the API refuse
the same configurations with the same messages. Options that do not apply to the chosen
policy are refused rather than silently ignored. Each option is defined once, in
:class:`EndpointOptions`, and both commands take them through :func:`with_endpoint_options`.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated as A
from typing import Any, get_type_hints

import typer

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
    name: str | None, current: dict[str, Any] | None, options: EndpointOptions
) -> dict[str, Any]:
    """The endpoint document from ``current`` (None: a new endpoint) and the options."""
    file = options.file
    given = {k: v for k, v in asdict(options).items() if k != "file" and v not in (None, [], {})}
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


Opt = typer.Option  # short, so most options below fit on one line


@dataclass(frozen=True)
class EndpointOptions:
    """The options of ``vigil endpoint create`` and ``update``, each defined once here
    (flags, help) and given to both commands by :func:`with_endpoint_options`."""

    file: A[Path | None, Opt("--file", "-f", help="The whole configuration as YAML or JSON.")] = (
        None
    )
    variant: A[
        list[str] | None,
        Opt("--variant", "-v", help="Variant NAME=models:/MODEL@ALIAS or NAME=models:/MODEL/N."),
    ] = None
    policy: A[str | None, Opt("--policy", "-p", help=f"One of: {', '.join(POLICIES)}.")] = None
    weight: A[list[str] | None, Opt("--weight", help="split: NAME=WEIGHT (relative).")] = None
    primary: A[str | None, Opt("--primary", help="fixed: the variant; shadow: who answers.")] = None
    shadow: A[list[str] | None, Opt("--shadow", help="shadow: a variant receiving copies.")] = None
    sample_rate: A[float | None, Opt("--sample-rate", help="shadow: share of requests copied.")] = (
        None
    )
    stable: A[str | None, Opt("--stable", help="canary: the variant serving now.")] = None
    canary: A[str | None, Opt("--canary", help="canary: the variant being ramped up.")] = None
    canary_steps: A[
        str | None, Opt("--canary-steps", help="canary: percents, e.g. 5,25,50,100.")
    ] = None
    step_duration: A[
        float | None, Opt("--step-duration", help="canary: least seconds per step.")
    ] = None
    step_requests: A[
        int | None, Opt("--step-requests", help="canary: least requests per step.")
    ] = None
    max_error_rate_increase: A[
        float | None, Opt("--max-error-rate-increase", help="canary guard, e.g. 0.01.")
    ] = None
    max_latency_ratio: A[
        float | None, Opt("--max-latency-ratio", help="canary guard: p99 ratio, e.g. 2.")
    ] = None
    max_quality_drop: A[
        float | None, Opt("--max-quality-drop", help="canary guard: accuracy/reward drop.")
    ] = None
    guard_min_requests: A[
        int | None, Opt("--guard-min-requests", help="canary: requests before judging.")
    ] = None
    promote_alias: A[
        str | None,
        Opt("--promote-alias", help="canary: alias moved on completion ('none': no move)."),
    ] = None
    epsilon: A[float | None, Opt("--epsilon", help="epsilon_greedy: exploration rate.")] = None
    reward: A[str | None, Opt("--reward", help="bandits: bernoulli or gaussian.")] = None
    refresh: A[float | None, Opt("--refresh", help="bandits: seconds between state reads.")] = None
    unit_header: A[
        str | None, Opt("--unit-header", help="Header with the unit id ('none': off).")
    ] = None
    unit_field: A[str | None, Opt("--unit-field", help="JSON body field with the unit id.")] = None
    salt: A[str | None, Opt("--salt", help="Salt of the unit hash (changing it reshuffles).")] = (
        None
    )
    alert_webhook: A[
        list[str] | None, Opt("--alert-webhook", help="URL told of rollbacks and promotions.")
    ] = None


def with_endpoint_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with every :class:`EndpointOptions` field as a typer option after its
    own parameters; it receives their values as one ``options`` argument."""
    hints = get_type_hints(EndpointOptions, include_extras=True)
    names = [f.name for f in fields(EndpointOptions)]
    own = [
        p
        for p in inspect.signature(command, eval_str=True).parameters.values()
        if p.name != "options"
    ]
    added = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=hints[f.name],
        )
        for f in fields(EndpointOptions)
    ]

    @functools.wraps(command)
    def run(**values: Any) -> None:
        options = EndpointOptions(**{name: values.pop(name) for name in names})
        command(**values, options=options)

    run.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
    return run
