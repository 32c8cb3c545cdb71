"""The PromQL of the deployment's dashboards and rules, as tests evaluate it.

:func:`dashboard_queries` walks a Grafana dashboard's panels (rows' nested panels too)
and yields each target's expression; :func:`resolve` substitutes Grafana's variables as
Grafana would send them to Prometheus; :func:`operands` splits an alert condition into
the expressions it compares, which must each return data even while the alert is silent.

>>> operands('job:x:ratio > (14.4 * 0.01) and job:y:ratio > 0.1')
['job:x:ratio', 'job:y:ratio']
>>> operands('absent(up{job="vigil"} == 1)')
['up{job="vigil"}']
>>> operands('time() - max by (m) (w{a=~"x|y"}) > 6 * 3600')
['time() - max by (m) (w{a=~"x|y"})']
>>> resolve('rate(x{m=~"$model"}[$__rate_interval])', {"model": "(a|b)"}, "10s")
'rate(x{m=~"(a|b)"}[10s])'
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
RULES = MONITORING / "prometheus" / "rules.yml"

_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")
_NUMBER = re.compile(r"^[\s\d.()*+\-/]+$")


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, expression)`` of every Prometheus target."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The query variables, in the order Grafana resolves them."""
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def label_values(variable: Mapping[str, Any]) -> tuple[str | None, str]:
    """``(series selector or None, label)`` of a ``label_values(...)`` variable."""
    found = _LABEL_VALUES.match(variable["definition"].strip())
    assert found is not None, f"variable {variable['name']}: not a label_values query"
    return found[1], found[2]


def resolve(expr: str, values: Mapping[str, str], rate_interval: str) -> str:
    """``expr`` with Grafana's variables replaced: ``values`` for the dashboard's own,
    ``rate_interval`` for ``$__rate_interval`` (an unknown variable raises KeyError)."""
    builtins = {"__rate_interval": rate_interval, "__interval": rate_interval}

    def value(found: re.Match[str]) -> str:
        name = found[1] or found[2]
        return builtins[name] if name in builtins else values[name]

    return _VARIABLE.sub(value, expr)


def multi_value(values: list[str]) -> str:
    r"""Several values of a multi-value variable, as Grafana formats them for a regex
    matcher: regex-escaped, with each backslash doubled for the PromQL string.

    >>> print(multi_value(["a", "10.0.0.1:80"]))
    (a|10\\.0\\.0\\.1:80)
    """
    return "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in values) + ")"


def _split(expr: str, operators: re.Pattern[str]) -> list[str]:
    """Parts of ``expr`` between the ``operators`` found outside brackets and strings."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            found = operators.match(expr, i)
            if found is not None:
                parts.append(expr[start:i])
                start = i = found.end()
                continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts]


_SET = re.compile(r"\s(and|or|unless)\s")
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*bool\b)?")


def operands(condition: str) -> list[str]:
    """The non-constant expressions an alert condition compares (see the module doc)."""
    found: list[str] = []
    for part in _split(" ".join(condition.split()), _SET):
        for side in _split(part, _COMPARISON):
            if side.startswith("absent(") and side.endswith(")"):
                found.extend(operands(side[len("absent(") : -1]))
            elif not _NUMBER.match(side):
                found.append(side)
    return found


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_queries() -> Iterator[tuple[str, str]]:
    """``(rule name, expression)``: each recording rule's expression, each alert's operands."""
    for rule in rules():
        expr = " ".join(str(rule["expr"]).split())
        if "record" in rule:
            yield rule["record"], expr
        else:
            for operand in operands(expr):
                yield rule["alert"], operand
