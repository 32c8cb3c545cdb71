"""A model card's content as sections of plain blocks, for both renderers.

:func:`sections` turns a :class:`~vigil.card.facts.ModelCard` into an ordered list of
:class:`Section`, each a title and blocks: paragraphs, key/value facts, tables, commands
and charts. Every text here is plain (unescaped); :mod:`vigil.card.html` and
:mod:`vigil.card.markdown` escape it for their format, so the two documents say the same
thing. Charts are SVG already (built by :mod:`vigil.report.svg` and :mod:`vigil.card.bars`,
which escape their labels); Markdown shows their numbers as tables instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vigil.card.bars import bar_chart
from vigil.card.facts import FairnessPoint, ModelCard
from vigil.profile_schema import CategoricalProfile, NumericProfile
from vigil.report.profile_distributions import against_profile
from vigil.report.svg import feature_chart

MAX_CHARTS = 40
"""Baseline profile charts drawn at most (the features' summary table lists every one)."""
LINEAGE_KEYS = (
    "source",
    "source_sha256",
    "reference",
    "reference_sha256",
    "git_commit",
    "host",
    "python",
    "vigil_version",
)
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
CARD_HINT = (
    "vigil model edit {uri} --purpose TEXT --owner TEXT --intended-use TEXT --limitations TEXT"
)


@dataclass(frozen=True)
class Para:
    text: str
    muted: bool = False


@dataclass(frozen=True)
class Facts:
    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Command:
    text: str


@dataclass(frozen=True)
class Chart:
    svg: str
    caption: str


Block = Para | Facts | Table | Command | Chart


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    filled: bool = True
    """Whether vigil knew something for it (else it says what is missing and how)."""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _overview(card: ModelCard) -> Section:
    mv = card.version
    told = mv.card
    labels = {
        "purpose": "Purpose",
        "owner": "Owner",
        "intended_use": "Intended use",
        "limitations": "Limitations",
    }
    items = [("Description", mv.description or "—")]
    items += [(label, told.get(key, "not given")) for key, label in labels.items()]
    blocks: list[Block] = [Facts(items)]
    missing = [labels[k].lower() for k in labels if k not in told]
    if missing:
        blocks.append(
            Para(f"Not given at registration: {', '.join(missing)}. Add them (audited):", True)
        )
        blocks.append(Command(CARD_HINT.format(uri=mv.uri)))
    return Section("overview", "Overview", blocks, filled=not missing)


def _lineage(card: ModelCard) -> Section:
    mv = card.version
    lineage = mv.lineage or {}
    items = [
        ("model URI", mv.uri),
        ("aliases", ", ".join(mv.aliases) or "—"),
        ("flavor", mv.flavor),
        ("artifact sha256", mv.sha256),
        ("size", f"{mv.size_bytes:,} bytes"),
        ("registered", f"{_when(mv.created_at)} by {mv.created_by}"),
    ]
    if mv.archived_at is not None:
        items.append(("archived", _when(mv.archived_at)))
    items += [
        (key.replace("_", " "), str(lineage[key])) for key in LINEAGE_KEYS if lineage.get(key)
    ]
    reference = mv.manifest.get("reference")
    if isinstance(reference, dict):
        digest = (reference.get("source") or {}).get("sha256")
        items.append(
            (
                "reference data",
                f"{reference.get('n_rows', 0):,} rows"
                + (f", label {reference['target']}" if reference.get("target") else "")
                + f"; sha256 {digest or 'not recorded (passed in memory)'}",
            )
        )
    frameworks = mv.manifest.get("frameworks")
    if isinstance(frameworks, dict) and frameworks:
        items.append(("environment", ", ".join(f"{k} {v}" for k, v in frameworks.items())))
    trust = lineage.get("trust")
    if isinstance(trust, dict):
        types = ", ".join(trust.get("types") or []) or "none"
        items.append(
            ("trust", f"pickle {'allowed' if trust.get('pickle') else 'refused'}; types {types}")
        )
    if mv.tags:
        items.append(("tags", ", ".join(f"{k}={v}" for k, v in mv.tags.items())))
    return Section("lineage", "Lineage", [Facts(items)])


def _signature(card: ModelCard) -> Section:
    sig = card.version.signature or {}
    inputs = sig.get("inputs") or []
    rows = []
    for f in inputs:
        cats = f.get("categories") or []
        shown = ", ".join(map(str, cats[:8])) + (f", … ({len(cats)})" if len(cats) > 8 else "")
        rows.append(
            [
                str(f.get("name")),
                str(f.get("dtype")),
                "yes" if f.get("required", True) else "no",
                shown,
            ]
        )
    blocks: list[Block] = [Table(["input", "type", "required", "categories"], rows)]
    out = sig.get("outputs") or {}
    if out:
        classes = out.get("classes")
        text = f"Output: {out.get('task', 'other')} ({out.get('dtype', '')})"
        blocks.append(Para(text + (f", classes {', '.join(map(str, classes))}" if classes else "")))
    return Section("signature", f"Signature ({len(inputs)} inputs)", blocks, filled=bool(inputs))


def _metrics(card: ModelCard) -> Section:
    metrics = card.version.metrics
    if not metrics:
        return Section(
            "metrics",
            "Metrics at registration",
            [
                Para(
                    "None were given. Pass them at registration: vigil register ... --metric accuracy=0.93",
                    True,
                )
            ],
            filled=False,
        )
    rows = [[k, f"{v:.6g}"] for k, v in metrics.items()]
    return Section("metrics", "Metrics at registration", [Table(["metric", "value"], rows)])


def _profile_row(name: str, p: NumericProfile | CategoricalProfile) -> list[str]:
    rows = p.count + p.missing
    missing = f"{p.missing / rows:.1%}" if rows else "—"
    if isinstance(p, NumericProfile):
        return [
            name,
            "numeric",
            f"{p.count:,}",
            missing,
            f"{_num(p.mean)} ± {_num(p.std)}",
            f"{_num(p.min)} … {_num(p.max)}",
        ]
    top = sorted(p.frequencies.items(), key=lambda kv: -kv[1])[:3]
    return [
        name,
        "categorical",
        f"{p.count:,}",
        missing,
        f"{p.n_unique} categories",
        ", ".join(k for k, _ in top),
    ]


def _baseline(card: ModelCard) -> Section:
    profile = card.profile
    if profile is None:
        return Section(
            "baseline",
            "Baseline profile",
            [
                Para(
                    "This version was registered without reference data: no baseline profile, so no drift monitoring. Register it again with --reference DATA.",
                    True,
                )
            ],
            filled=False,
        )
    columns: list[tuple[str, NumericProfile | CategoricalProfile]] = list(profile.features.items())
    if profile.prediction is not None:
        columns.append(("prediction", profile.prediction))
    if profile.target is not None:
        columns.append((f"{profile.target_name or 'target'} (label)", profile.target))
    rows = [_profile_row(name, p) for name, p in columns]
    blocks: list[Block] = [
        Para(
            f"Built from {profile.n_rows:,} reference rows (the data monitoring compares traffic with)."
        ),
        Table(
            ["column", "kind", "rows", "missing", "centre / categories", "range / most frequent"],
            rows,
        ),
    ]
    ordered = _by_importance(columns, card.importance)
    for name, p in ordered[:MAX_CHARTS]:
        reference, _ = against_profile(p, [])
        blocks.append(
            Chart(feature_chart(name, reference, None), f"{name}: reference distribution")
        )
    if len(ordered) > MAX_CHARTS:
        blocks.append(
            Para(
                f"{len(ordered) - MAX_CHARTS} more columns are in the table, without charts.", True
            )
        )
    return Section("baseline", "Baseline profile", blocks)


def _by_importance(
    columns: Sequence[tuple[str, NumericProfile | CategoricalProfile]],
    importance: dict[str, Any] | None,
) -> list[tuple[str, NumericProfile | CategoricalProfile]]:
    """The model's output first, then features by importance (when known), the rest after."""
    weights: dict[str, float] = (importance or {}).get("features", {})
    order = {name: i for i, name in enumerate(weights)}
    return sorted(
        columns,
        key=lambda c: (c[0] != "prediction", order.get(c[0], len(order))),
    )


def _importance(card: ModelCard) -> Section:
    imp = card.importance
    if imp is None:
        return Section(
            "importance",
            "Global importance",
            [
                Para(
                    "Not recorded: the version has no reference sample or no explainer (pip install 'vigil[explain]' and register it again).",
                    True,
                )
            ],
            filled=False,
        )
    features: dict[str, float] = imp["features"]
    top = list(features.items())[:20]
    how = "exact" if imp.get("exact") else "estimated"
    text = f"Mean absolute {imp.get('method')} attribution ({how}) of the {imp.get('output')} over {imp.get('rows')} reference rows."
    blocks: list[Block] = [
        Para(text),
        Chart(bar_chart("Global importance", top, label="mean |attribution|"), "largest first"),
        Table(["feature", "mean |attribution|"], [[k, f"{v:.4g}"] for k, v in features.items()]),
    ]
    return Section("importance", "Global importance", blocks)


def _fairness(card: ModelCard) -> Section:
    blocks: list[Block] = []
    if card.fairness_at_registration:
        items = [(k, _num(v)) for k, v in _flat(card.fairness_at_registration)]
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
        Para(f"In the {len(ends)} newest monitoring windows (the last ended {_when(latest_end)}):")
    ]
    between = [p for p in points if p.group is None]
    if between:
        keys = sorted({(p.attribute, p.metric) for p in between})
        value = {(p.attribute, p.metric, p.window_end): p.value for p in between}
        rows = [[f"{a}", m, *(_num(value.get((a, m, e))) for e in ends)] for a, m in keys]
        blocks.append(
            Table(
                ["attribute", "between groups", *(_when(e) for e in ends)],
                rows,
                "gaps between groups, per window",
            )
        )
    groups = [p for p in points if p.group is not None and p.window_end == latest_end]
    if groups:
        rows = [
            [p.attribute, str(p.group), p.metric, _num(p.value)]
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


def _monitoring(card: ModelCard) -> Section:
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
            _when(w.end),
            w.window,
            w.route,
            f"{w.n_rows:,}",
            f"{w.n_labelled:,}",
            *(_num(w.values.get(m)) for m in shown),
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


def _alerts(card: ModelCard) -> Section:
    if not card.alerts:
        return Section(
            "alerts", "Alert history", [Para("No alert has fired for this model.", True)]
        )
    rows = [
        [
            _when(a.created_at),
            a.rule,
            a.status,
            a.severity,
            a.summary,
            _num(a.value),
            _num(a.threshold),
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


def _promotions(card: ModelCard) -> Section:
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
                _when(e.at),
                e.alias,
                e.action,
                _num(e.from_version),
                _num(e.to_version),
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
        rows = [
            [_when(e.at), e.actor, e.action, e.entity_name, _brief(e.after)] for e in card.audit
        ]
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


def sections(card: ModelCard) -> list[Section]:
    """The card's sections, in reading order."""
    return [
        _overview(card),
        _lineage(card),
        _signature(card),
        _metrics(card),
        _baseline(card),
        _importance(card),
        _fairness(card),
        _monitoring(card),
        _alerts(card),
        _promotions(card),
    ]
