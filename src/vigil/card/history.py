"""The sections of a model card about how the version has behaved: fairness by group,
monitoring windows, alerts, and the experiments, promotions and audited changes around it."""

from __future__ import annotations

from typing import Any

from vigil.card.bars import bar_chart
from vigil.card.blocks import Block, Chart, Command, Facts, Para, Section, Table, num, when
from vigil.card.facts import FairnessPoint, ModelCard

WINDOW_METRICS = (
    "drift.share",
    "drift.n_drifted",
    "drift.prediction",
    "performance.accuracy",
    "performance.roc_auc",
    "performance.rmse",
    "quality.missing_rate",
)
"""Whole-window values the monitoring table shows, when a window has them."""


def fairness_section(card: ModelCard) -> Section:
    blocks: list[Block] = []
    if card.fairness_at_registration:
        items = [(k, num(v)) for k, v in _flat(card.fairness_at_registration)]
        blocks += [Para("At registration, on the reference data:"), Facts(items)]
    if card.fairness:
        blocks += _fairness_windows(card.fairness)
    if not blocks:
        return Section(
            "fairness",
            "Fairness by group",
            [
                Para(
                    "Fairness is not configured for this model: no fairness series "
                    "(fairness.<attribute>.<metric>) were recorded at registration or in its "
                    "monitoring windows. Declare the model's sensitive attributes in the "
                    "monitoring settings (a feature, a passthrough field captured beside the "
                    "features, or a feedback field) and run monitoring; the card then shows "
                    "selection rate, accuracy and error rates per group and the gaps between "
                    "groups.",
                    True,
                ),
                Command("vigil monitor run"),
            ],
            filled=False,
        )
    return Section("fairness", "Fairness by group", blocks)


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flat(value, name + ".")
        else:
            out.append((name, value))
    return out


def _fairness_windows(points: list[FairnessPoint]) -> list[Block]:
    latest_end = max(p.window_end for p in points)
    ends = sorted({p.window_end for p in points})
    blocks: list[Block] = [
        Para(f"In the {len(ends)} newest monitoring windows (the last ended {when(latest_end)}):")
    ]
    between = [p for p in points if p.group is None]
    if between:
        keys = sorted({(p.attribute, p.metric) for p in between})
        value = {(p.attribute, p.metric, p.window_end): p.value for p in between}
        rows = [[f"{a}", m, *(num(value.get((a, m, e))) for e in ends)] for a, m in keys]
        blocks.append(
            Table(
                ["attribute", "between groups", *(when(e) for e in ends)],
                rows,
                "gaps between groups, per window",
            )
        )
    groups = [p for p in points if p.group is not None and p.window_end == latest_end]
    if groups:
        rows = [
            [p.attribute, str(p.group), p.metric, num(p.value)]
            for p in sorted(groups, key=lambda p: (p.attribute, p.metric, str(p.group)))
        ]
        blocks.append(
            Table(["attribute", "group", "metric", "value"], rows, "per group, newest window")
        )
        for attribute, metric in sorted({(p.attribute, p.metric) for p in groups}):
            items = [
                (str(p.group), p.value)
                for p in groups
                if p.attribute == attribute and p.metric == metric
            ]
            blocks.append(
                Chart(
                    bar_chart(f"{attribute}: {metric}", items, label=metric),
                    f"{metric} by {attribute} group, newest window",
                )
            )
    return blocks


def monitoring_section(card: ModelCard) -> Section:
    limit = card.limits.get("windows")
    if not card.windows:
        return Section(
            "monitoring",
            "Monitoring",
            [
                Para(
                    "No monitoring window has been computed for this version yet: serve it, send traffic, then run monitoring.",
                    True,
                ),
                Command("vigil monitor run"),
            ],
            filled=False,
        )
    shown = [m for m in WINDOW_METRICS if any(m in w.values for w in card.windows)]
    rows = [
        [
            when(w.end),
            w.window,
            w.route,
            f"{w.n_rows:,}",
            f"{w.n_labelled:,}",
            *(num(w.values.get(m)) for m in shown),
        ]
        for w in reversed(card.windows)
    ]
    return Section(
        "monitoring",
        "Monitoring",
        [
            Para(f"The {len(card.windows)} newest windows (at most {limit}), newest first."),
            Table(["window end", "window", "route", "rows", "labelled", *shown], rows),
        ],
    )


def alerts_section(card: ModelCard) -> Section:
    if not card.alerts:
        return Section(
            "alerts", "Alert history", [Para("No alert has fired for this model.", True)]
        )
    rows = [
        [
            when(a.created_at),
            a.rule,
            a.status,
            a.severity,
            a.summary,
            num(a.value),
            num(a.threshold),
        ]
        for a in card.alerts
    ]
    return Section(
        "alerts",
        "Alert history",
        [
            Para(
                f"The {len(card.alerts)} newest alert events (at most {card.limits.get('alerts')}), newest first."
            ),
            Table(["at", "rule", "status", "severity", "summary", "value", "threshold"], rows),
        ],
    )


def promotions_section(card: ModelCard) -> Section:
    blocks: list[Block] = []
    if card.endpoints:
        rows = [
            [e.name, e.policy, ", ".join(f"{k} → {v}" for k, v in e.variants.items())]
            for e in card.endpoints
        ]
        blocks += [
            Para("Endpoints serving this model (experiments, canaries, shadows):"),
            Table(["endpoint", "policy", "variants of this model"], rows),
        ]
    if card.alias_history:
        rows = [
            [
                when(e.at),
                e.alias,
                e.action,
                num(e.from_version),
                num(e.to_version),
                e.actor,
                e.reason or "",
            ]
            for e in card.alias_history
        ]
        blocks += [
            Para("Promotions and rollbacks (alias moves), newest first:"),
            Table(["at", "alias", "action", "from", "to", "by", "reason"], rows),
        ]
    if card.audit:
        rows = [[when(e.at), e.actor, e.action, e.entity_name, _brief(e.after)] for e in card.audit]
        blocks += [
            Para(
                f"Audit trail (the {len(card.audit)} newest entries, at most {card.limits.get('events')}):"
            ),
            Table(["at", "by", "action", "entity", "after"], rows),
        ]
    if not blocks:
        return Section(
            "promotions",
            "Experiments and promotions",
            [Para("No endpoint, alias move or audited change involves this model.", True)],
            filled=False,
        )
    return Section(
        "promotions",
        "Experiments and promotions",
        blocks,
        filled=bool(card.endpoints and card.alias_history),
    )


def _brief(value: dict[str, Any] | None, limit: int = 120) -> str:
    if not value:
        return ""
    text = ", ".join(f"{k}={v}" for k, v in value.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
