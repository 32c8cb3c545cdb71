"""Registry commands: register, model list/show/edit/archive/unarchive/delete, alias
list/set/delete, rollback, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vigil.cli._options import JSON, rows_option, services
from vigil.console import (
    as_dict,
    console,
    fail,
    human_size,
    print_json,
    progress,
    shown,
    table,
    when,
)
from vigil.uri import MAX_VERSION

model_app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)
alias_app = typer.Typer(
    help="Point aliases (production, staging, ...) at versions.", no_args_is_help=True
)


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--{what} takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


PURPOSE = typer.Option(None, "--purpose", help="Model card: what the model is for.")
OWNER = typer.Option(None, "--owner", help="Model card: who answers for it (team or person).")
INTENDED_USE = typer.Option(
    None, "--intended-use", help="Model card: where and by whom it is meant to be used."
)
LIMITATIONS = typer.Option(
    None, "--limitations", help="Model card: where it must not be trusted, known weaknesses."
)


def _card(
    purpose: str | None, owner: str | None, intended_use: str | None, limitations: str | None
) -> dict[str, str]:
    given = {
        "purpose": purpose,
        "owner": owner,
        "intended_use": intended_use,
        "limitations": limitations,
    }
    return {k: v for k, v in given.items() if v is not None}


def register(
    name: str = typer.Argument(..., help="Model name (letters, digits, '.', '_', '-')."),
    path: Path = typer.Argument(
        ..., help="Model file (.skops, .onnx, .json/.ubj, .txt, .pkl) or MLflow model directory."
    ),
    reference: Path = typer.Option(
        None,
        "--reference",
        "-r",
        help="Reference data (CSV or Parquet) for the signature and baseline profile.",
    ),
    target: str = typer.Option(
        None, "--target", help="Label column in the reference data (profiled, not a feature)."
    ),
    alias: str = typer.Option(
        None, "--alias", "-a", help="Alias to point at the new version, e.g. production."
    ),
    tag: list[str] = typer.Option(None, "--tag", "-t", help="Tag KEY=VALUE (repeatable)."),
    metric: list[str] = typer.Option(
        None, "--metric", "-m", help="Metric KEY=NUMBER (repeatable)."
    ),
    description: str = typer.Option(None, "--description", "-d", help="Free-text description."),
    flavor: str = typer.Option(
        None,
        "--flavor",
        help="Override flavor detection (sklearn, onnx, xgboost, lightgbm, mlflow).",
    ),
    trust_pickle: bool = typer.Option(
        False,
        "--trust-pickle",
        help="Allow pickle/joblib/cloudpickle files (they can run arbitrary code).",
    ),
    trust_type: list[str] = typer.Option(
        None,
        "--trust-type",
        help="Trust one type in a skops file, e.g. sklearn.tree._tree.Tree (repeatable).",
    ),
    candidate_for: str = typer.Option(
        None,
        "--candidate-for",
        help="Hand the version to the run of this model's update policy waiting for its "
        "retraining job (the run resumes with its gate).",
    ),
    purpose: str = PURPOSE,
    owner: str = OWNER,
    intended_use: str = INTENDED_USE,
    limitations: str = LIMITATIONS,
    json_out: bool = JSON,
) -> None:
    """Register a model file as a new immutable version, with its signature and baseline profile."""
    from vigil.bundle.trust import TrustPolicy

    metrics: dict[str, float] = {}
    for key, value in _pairs(metric, "metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            fail(f"--metric {key}={value!r}: the value must be a number")
    trust = TrustPolicy(trust_pickle=trust_pickle, trusted_types=tuple(trust_type or ()))
    with progress(not json_out) as display:
        step = display.step("profiling reference", unit="rows") if display and reference else None
        mv = services().register(
            str(path),
            name=name,
            reference=str(reference) if reference else None,
            target=target,
            alias=alias,
            tags=_pairs(tag, "tag"),
            metrics=metrics,
            description=description,
            flavor=flavor,
            trust=trust,
            progress=step.update if step else None,
            candidate_for=candidate_for,
            card=_card(purpose, owner, intended_use, limitations),
        )
    if json_out:
        print_json(as_dict(mv))
        return
    console.print(
        f"[green]registered[/] [bold]models:/{shown(mv.name)}/{mv.version}[/] "
        f"({mv.flavor}, {human_size(mv.size_bytes)}, sha256 {mv.sha256[:12]})"
        + (f" → alias [bold]{shown(alias)}[/]" if alias else "")
    )
    _say_watched_metrics(metrics)
    _show_personal_data(mv.manifest.get("personal_data"))


def _say_watched_metrics(metrics: dict[str, float]) -> None:
    """Which registered metrics monitoring compares with labelled traffic, and which not."""
    from vigil.monitor.points import performance_measure  # a small module, no I/O

    watched, ignored = [], []
    for key, value in metrics.items():
        measure = performance_measure(key)
        if measure is None:
            ignored.append(key)
        else:
            named = measure if measure == key else f"{measure} (registered as {key})"
            watched.append(f"{named} = {value:g}")
    if watched:
        console.print(
            "monitoring alerts when labelled traffic falls behind: " + shown(", ".join(watched)),
            highlight=False,
        )
    if ignored:
        console.print(
            shown(f"not computed from labels, so not monitored: {', '.join(ignored)}"),
            highlight=False,
        )


@model_app.command("list")
def list_models(json_out: bool = JSON) -> None:
    """List registered models with their newest version and aliases."""
    reg = services().registry
    models = reg.list_models()
    if json_out:
        print_json([as_dict(m) for m in models])
        return
    if not models:
        console.print(
            "no models registered yet; try: vigil register NAME MODEL_FILE --reference DATA"
        )
        return
    rows = []
    for m in models:
        d = as_dict(m)
        aliases = d.get("aliases") or {}
        alias_text = (
            ", ".join(f"{a}→v{v}" for a, v in sorted(aliases.items()))
            if isinstance(aliases, dict)
            else ", ".join(aliases)
        )
        rows.append(
            (
                d["name"],
                d.get("latest_version"),
                d.get("version_count"),
                alias_text,
                when(d.get("updated_at")),
            )
        )
    table("Registered models", ["name", "latest", "versions", "aliases", "updated"], rows)


@model_app.command("show")
def show(
    uri: str = typer.Argument(
        ..., help="models:/NAME/VERSION, models:/NAME@ALIAS or NAME (all versions)."
    ),
    json_out: bool = JSON,
) -> None:
    """Show one version (signature, metrics, lineage), or every version of a model."""
    reg = services().registry
    if "/" not in uri and "@" not in uri:
        versions = reg.list_versions(uri)
        if json_out:
            print_json([as_dict(v) for v in versions])
            return
        rows = [
            (
                f"{v.version} (archived)" if v.archived_at else v.version,
                v.flavor,
                ", ".join(v.aliases),
                human_size(v.size_bytes),
                v.sha256[:12],
                when(v.created_at),
                v.created_by,
                v.description or "",
            )
            for v in versions
        ]
        table(
            f"Versions of {uri}",
            ["version", "flavor", "aliases", "size", "sha256", "created", "by", "description"],
            rows,
        )
        return
    mv = reg.resolve(uri)
    d = as_dict(mv)
    if json_out:
        print_json(d)
        return
    console.print(f"[bold]models:/{shown(mv.name)}/{mv.version}[/]  {shown(mv.description)}")
    facts = [
        ("flavor", mv.flavor),
        ("aliases", ", ".join(mv.aliases) or "-"),
        ("sha256", mv.sha256),
        ("size", human_size(mv.size_bytes)),
        ("created", f"{when(mv.created_at)} by {mv.created_by}"),
        ("tags", ", ".join(f"{k}={v}" for k, v in (mv.tags or {}).items()) or "-"),
        ("metrics", ", ".join(f"{k}={v:g}" for k, v in (mv.metrics or {}).items()) or "-"),
    ]
    lineage = mv.lineage or {}
    for key in ("source", "source_sha256", "reference", "reference_sha256", "git_commit"):
        if lineage.get(key):
            facts.append((key, str(lineage[key])))
    facts.extend((key.replace("_", " "), value) for key, value in mv.card.items())
    table("Version", ["field", "value"], facts)
    sig = mv.signature or {}
    inputs = sig.get("inputs", [])
    table(
        f"Signature ({len(inputs)} inputs)",
        ["feature", "type", "required", "categories"],
        [
            (
                f["name"],
                f["dtype"],
                "yes" if f.get("required", True) else "no",
                _cats(f.get("categories")),
            )
            for f in inputs
        ],
    )
    _show_importance(mv.manifest.get("importance"))
    _show_personal_data(mv.manifest.get("personal_data"))
    out = sig.get("outputs") or {}
    if out:
        classes = out.get("classes")
        console.print(
            shown(
                f"output: {out.get('task', 'other')} ({out.get('dtype', '')})"
                + (f", classes {classes}" if classes else "")
            )
        )


@model_app.command("edit")
def edit(
    uri: str = typer.Argument(..., help="models:/NAME/VERSION or models:/NAME@ALIAS."),
    description: str = typer.Option(None, "--description", "-d", help="Free-text description."),
    purpose: str = PURPOSE,
    owner: str = OWNER,
    intended_use: str = INTENDED_USE,
    limitations: str = LIMITATIONS,
    json_out: bool = JSON,
) -> None:
    """Edit a version's description and model card facts (audited); an empty text ("")
    removes a card fact, an option not given leaves it as it is."""
    card = _card(purpose, owner, intended_use, limitations)
    if description is None and not card:
        fail(
            "nothing to edit: give --description, --purpose, --owner, --intended-use or --limitations"
        )
    reg = services().registry
    mv = reg.resolve(uri)
    if description is not None:
        mv = reg.update_version(mv.name, mv.version, description=description)
    if card:
        mv = reg.update_card(mv.name, mv.version, card)
    if json_out:
        print_json(as_dict(mv))
        return
    console.print(f"[green]edited[/] models:/{shown(mv.name)}/{mv.version}", highlight=False)
    for key, value in mv.card.items():
        console.print(f"  {key}: {shown(value)}", highlight=False, soft_wrap=True)


def _show_importance(importance: dict[str, Any] | None, top: int = 15) -> None:
    """The version's global importance (mean |attribution| on reference rows), largest
    first, with a bar scaled to the largest."""
    if not importance or not importance.get("features"):
        return
    features: dict[str, float] = importance["features"]
    largest = max(features.values()) or 1.0
    how = "exact" if importance.get("exact") else "estimated"
    table(
        "Global importance",
        ["feature", "mean |attribution|", ""],
        [
            (shown(name), f"{value:.4g}", "█" * max(1, round(20 * value / largest)))
            for name, value in list(features.items())[:top]
        ],
    )
    console.print(
        f"{importance.get('method')} attributions ({how}) of the {importance.get('output')}, "
        f"over {importance.get('rows')} reference rows",
        highlight=False,
    )
    if len(features) > top:
        console.print(f"... and {len(features) - top} more (--json lists all)")


def _show_personal_data(personal_data: dict[str, Any] | None) -> None:
    """The columns flagged as personal data at registration, and the capture ``mask``
    (in ``vigil.yaml``'s words) that hides them."""
    columns: dict[str, dict[str, Any]] = (personal_data or {}).get("columns") or {}
    if not columns:
        return
    table(
        "Personal data (suggested capture masking)",
        ["column", "looks like", "found by", "share of values", "mask"],
        [
            (
                name,
                f["kind"],
                f["found_by"],
                "-" if f.get("share") is None else f"{f['share']:.0%}",
                f["suggested"],
            )
            for name, f in columns.items()
        ],
    )
    lines = ["capture:", "  mask:"] + [
        f"    {shown(n)}: {f['suggested']}" for n, f in columns.items()
    ]
    if any(f["suggested"] == "hash" for f in columns.values()):
        lines.append("  hash_key: <a long random secret, or VIGIL_CAPTURE_HASH_KEY>")
    console.print(
        "to keep these out of the inference log, add to vigil.yaml:\n" + "\n".join(lines),
        highlight=False,
    )


def _cats(cats: list[Any] | None) -> str:
    if not cats:
        return ""
    shown = ", ".join(map(str, cats[:6]))
    return shown + (f", … ({len(cats)})" if len(cats) > 6 else "")


REASON = typer.Option(None, "--reason", help="Why, for the audit log.")


@model_app.command("archive")
def archive(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., min=1, max=MAX_VERSION, help="Version number."),
    reason: str = REASON,
    json_out: bool = JSON,
) -> None:
    """Take VERSION out of service but keep it: no alias may point at it, `latest` skips it.
    Refused while an alias or endpoint points at it."""
    mv = services().registry.archive_version(name, version, reason=reason)
    if json_out:
        print_json(as_dict(mv))
        return
    console.print(f"[green]archived[/] models:/{shown(name)}/{version}", highlight=False)


@model_app.command("unarchive")
def unarchive(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., min=1, max=MAX_VERSION, help="Version number."),
    reason: str = REASON,
    json_out: bool = JSON,
) -> None:
    """Put an archived VERSION back in service."""
    mv = services().registry.unarchive_version(name, version, reason=reason)
    if json_out:
        print_json(as_dict(mv))
        return
    console.print(f"[green]restored[/] models:/{shown(name)}/{version}", highlight=False)


@model_app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(
        None, min=1, max=MAX_VERSION, help="Version to delete; without it, the whole model."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Deleting a model: delete its aliases with it (each audited and listed). "
        "An endpoint naming the model still refuses it.",
    ),
    reason: str = REASON,
    json_out: bool = JSON,
) -> None:
    """Delete VERSION of model NAME, or the whole model; artifacts no other version shares
    are reclaimed. Refused while an alias or endpoint points at what would go."""
    reg = services().registry
    if version is not None:
        if force:
            fail("--force applies to deleting a whole model; a version in use is never deleted")
        mv = reg.delete_version(name, version, reason=reason)
        if json_out:
            print_json({"model": name, "version": version, "sha256": mv.sha256, "deleted": True})
            return
        console.print(f"[green]deleted[/] models:/{shown(name)}/{version}", highlight=False)
        return
    gone = reg.delete_model(name, force=force, reason=reason)
    if json_out:
        print_json({**as_dict(gone), "deleted": True})
        return
    removed = ", ".join(f"{a}→v{v}" for a, v in sorted(gone.aliases.items()))
    console.print(
        f"[green]deleted[/] model {shown(name)} ({len(gone.versions)} version(s))"
        + (f" and its aliases {shown(removed)}" if removed else ""),
        highlight=False,
    )


@alias_app.command("list")
def alias_list(
    name: str = typer.Argument(None, help="Only the aliases of this model."),
    json_out: bool = JSON,
) -> None:
    """List aliases and the version each points to."""
    aliases = services().registry.list_aliases(name)
    if json_out:
        print_json([as_dict(a) for a in aliases])
        return
    if not aliases:
        console.print(
            shown(f"{name} has no aliases" if name else "no aliases yet")
            + "; set one with: vigil alias set NAME ALIAS VERSION",
            highlight=False,
        )
        return
    table(
        "Aliases",
        ["model", "alias", "version", "since"],
        [(a.name, a.alias, a.version, when(a.updated_at)) for a in aliases],
    )


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(...),
    alias: str = typer.Argument(..., help="Alias, e.g. production."),
    version: int = typer.Argument(..., min=1, max=MAX_VERSION, help="Version number to point at."),
    reason: str = typer.Option(None, "--reason", help="Why, for the audit log."),
    json_out: bool = JSON,
) -> None:
    """Point ALIAS of model NAME at VERSION (recorded in the alias history and audit log)."""
    mv = services().registry.set_alias(name, alias, version, reason=reason)
    if json_out:
        print_json(as_dict(mv))
        return
    console.print(f"[green]alias[/] {shown(name)}@{shown(alias)} → version {version}")


@alias_app.command("delete")
def alias_delete(
    name: str = typer.Argument(...), alias: str = typer.Argument(...), json_out: bool = JSON
) -> None:
    """Remove an alias (its history stays in the audit log)."""
    version = services().registry.delete_alias(name, alias)
    if json_out:
        print_json({"model": name, "alias": alias, "version": version})
        return
    console.print(f"[green]deleted[/] alias {shown(name)}@{shown(alias)}")


def rollback(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias to move back."),
    json_out: bool = JSON,
) -> None:
    """Move ALIAS back to the version it pointed to before its last move."""
    before, after = services().registry.rollback(name, alias)
    if json_out:
        print_json({"model": name, "alias": alias, "from_version": before, "to_version": after})
        return
    console.print(f"[green]rolled back[/] {shown(name)}@{shown(alias)}: version {before} → {after}")


def audit(
    name: str = typer.Argument(None, help="Only events of this model."),
    limit: int = rows_option(50, most=10_000),
    json_out: bool = JSON,
) -> None:
    """Show the audit trail: who changed what, when, from what to what."""
    events = services().registry.audit(name, limit=limit)
    if json_out:
        print_json([as_dict(e) for e in events])
        return
    rows = []
    for e in events:
        d = as_dict(e)
        rows.append(
            (
                when(d.get("at")),
                d.get("actor"),
                d.get("action"),
                d.get("entity_name"),
                _brief(d.get("before")),
                _brief(d.get("after")),
            )
        )
    table("Audit log", ["at", "actor", "action", "entity", "before", "after"], rows)


def _brief(value: Any) -> str:
    if not value:
        return ""
    if isinstance(value, dict):
        return ", ".join(
            f"{k}={v}" for k, v in value.items() if k not in ("signature", "manifest", "lineage")
        )[:80]
    return str(value)[:80]


def install(app: typer.Typer) -> None:
    app.command()(register)
    app.add_typer(model_app, name="model")
    app.add_typer(model_app, name="models", hidden=True)  # the plural, as it was first named
    app.add_typer(alias_app, name="alias")
    app.command()(rollback)
    # `vigil audit` (showing this trail) is installed by vigil.cli.audit
