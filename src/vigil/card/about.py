"""The sections of a model card about what the version is: its overview (what a person
said of it), lineage, signature, registration metrics, baseline profile and global
importance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.card.bars import bar_chart
from vigil.card.blocks import Block, Chart, Command, Facts, Para, Section, Table, num, when
from vigil.card.facts import ModelCard
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
CARD_HINT = (
    "vigil model edit {uri} --purpose TEXT --owner TEXT --intended-use TEXT --limitations TEXT"
)


def overview_section(card: ModelCard) -> Section:
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


def lineage_section(card: ModelCard) -> Section:
    mv = card.version
    lineage = mv.lineage or {}
    items = [
        ("model URI", mv.uri),
        ("aliases", ", ".join(mv.aliases) or "—"),
        ("flavor", mv.flavor),
        ("artifact sha256", mv.sha256),
        ("size", f"{mv.size_bytes:,} bytes"),
        ("registered", f"{when(mv.created_at)} by {mv.created_by}"),
    ]
    if mv.archived_at is not None:
        items.append(("archived", when(mv.archived_at)))
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


def signature_section(card: ModelCard) -> Section:
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


def metrics_section(card: ModelCard) -> Section:
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
            f"{num(p.mean)} ± {num(p.std)}",
            f"{num(p.min)} … {num(p.max)}",
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


def baseline_section(card: ModelCard) -> Section:
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


def importance_section(card: ModelCard) -> Section:
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
