"""``vigil capture export``: the inference log of a model, as one Parquet file.
``vigil capture verify``: the compacted inference and feedback logs (and this host's closed
segments) checked against their chain manifests (:mod:`vigil.capture.chain`).
``vigil capture erase``: a person's records removed (:mod:`vigil.feedback.erase`).
``vigil capture keygen``: a new encryption key put first in a key file.
``vigil capture rekey``: the log rewritten under the first key (:mod:`vigil.capture.rekey`).

Export streams (:mod:`vigil.feedback.export`): partitions pruned by model and day, only the
columns asked for, written batch by batch; memory does not grow with the span.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from vigil.cli._options import JSON, services, since_option, time_option
from vigil.console import console, err_console, print_json, progress, shown
from vigil.uri import MAX_VERSION

capture_app = typer.Typer(
    name="capture",
    help="The inference log: export it, verify its files against their hash chains, erase a "
    "person's records, manage its encryption keys.",
    no_args_is_help=True,
)


@capture_app.command("export")
def export(
    model: str = typer.Argument(..., help="The model's name."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="The Parquet file to write (replaced when complete)."
    ),
    since: str = since_option("7d", "Start of the span"),
    until: str = typer.Option(
        None, "--until", help="End of the span (exclusive), as --since; default: now."
    ),
    version: int = typer.Option(
        None, "--version", min=1, max=MAX_VERSION, help="Only the rows version N answered."
    ),
    columns: str = typer.Option(
        None,
        "--columns",
        help="Comma-separated capture columns to keep (e.g. time,feature.age,prediction); "
        "default: every column.",
    ),
    labels: bool = typer.Option(
        False,
        "--labels",
        help="Only the rows with a label, with label, reward and feedback_time (training data).",
    ),
    as_json: bool = JSON,
) -> None:
    """Write MODEL's captured rows in the span to a Parquet file, streaming."""
    from vigil.errors import NotFoundError
    from vigil.feedback.export import export_capture

    now = datetime.now(UTC)
    start = time_option(since, "--since", now=now)
    end = time_option(until, "--until", now=now) or now
    app = services()
    app.registry.get_model(model)  # a typo gets "model not found", not an empty file
    store = app.feedback_store() if labels else None
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        with progress(not as_json) as display:
            step = display.step("exporting", None, unit="rows") if display else None
            done = export_capture(
                output,
                model,
                start,
                end,
                version,
                columns=wanted,
                feedback=store,
                store=app.artifacts,
                log_dir=app.capture_dir,
                progress=step.update if step else None,
            )
    finally:
        if store is not None:
            store.close()
    if not done.columns:
        output.unlink(missing_ok=True)
        raise NotFoundError(f"nothing captured for {model!r} since {start:%Y-%m-%d %H:%M} UTC")
    if as_json:
        print_json(
            {
                "path": str(done.path),
                "rows": done.rows,
                "columns": done.columns,
                "parts": done.parts,
            }
        )
        return
    console.print(
        f"wrote {done.rows:,} rows ({len(done.columns)} columns, {done.parts} compacted parts "
        f"read) to {done.path}",
        highlight=False,
    )


@capture_app.command("verify")
def verify(
    model: str = typer.Argument(None, help="Only this model's partitions."),
    json_out: bool = JSON,
) -> None:
    """Check every compacted file (and, for all models, this host's closed segments)
    against the chain manifests: name each edited, deleted or inserted file and each
    broken chain (exit status 1), or say all is intact."""
    from vigil.capture.chain import verify_capture, verify_segments
    from vigil.capture.compact import CAPTURE_ROOT, model_dir
    from vigil.feedback.store import FEEDBACK_ROOT

    vigil = services()
    store = vigil.artifacts
    results = [verify_capture(store, CAPTURE_ROOT, model_dir=model_dir(model) if model else None)]
    if model is None:  # segments hold every model's records: checked when all are
        results.append(verify_capture(store, FEEDBACK_ROOT))
        feedback_dir = vigil.capture_settings.resolved_feedback_dir(vigil.settings.home)
        for directory, prefix in ((vigil.capture_dir, "capture"), (feedback_dir, "feedback")):
            if directory.is_dir():
                results.append(verify_segments(directory, prefix))
    ok = all(r.ok for r in results)
    if json_out:
        print_json(
            {
                "ok": ok,
                "roots": [
                    {
                        "root": r.root,
                        "ok": r.ok,
                        "groups": r.groups,
                        "files": r.files,
                        "entries": r.entries,
                        "problems": [
                            {
                                "group": p.group,
                                "problem": p.problem,
                                "where": p.where,
                                "reason": p.reason,
                            }
                            for p in r.problems
                        ],
                    }
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            if r.ok:
                console.print(
                    f"[green]{shown(r.root)} intact[/]: {r.files} files, {r.entries} chain entries"
                )
            for p in r.problems:
                err_console.print(
                    f"[bold red]{p.problem}[/] {shown(p.where)}: {shown(p.reason)}",
                    highlight=False,
                    soft_wrap=True,
                )
    if not ok:
        raise typer.Exit(1)


WAIT_LIVE = typer.Option(
    None,
    "--wait",
    min=0,
    help="Seconds to wait for running servers to close their live segments (default: two "
    "VIGIL_CAPTURE_COMPACT_INTERVAL_S and 5 s).",
)


@capture_app.command("erase")
def erase(
    where: list[str] = typer.Option(
        ...,
        "--where",
        help="FIELD=VALUE naming the person (repeatable: every condition must hold), e.g. "
        "email=ann@example.com, or field.customer_id=c-7 for a field feedback carried; a "
        "hashed field is matched through VIGIL_CAPTURE_HASH_KEY.",
    ),
    wait: float = WAIT_LIVE,
    json_out: bool = JSON,
) -> None:
    """Remove a person's captured predictions and their feedback from the live segments
    and the compacted partitions, keeping the hash chains valid, and audit it (the field
    names and counts, never the values)."""
    from vigil.console import fail

    conditions: dict[str, str] = {}
    for item in where:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value:
            fail(f"--where takes FIELD=VALUE, got {item.split('=', 1)[0]!r}...")
        conditions[name.strip()] = value
    done = services().erase_subject(conditions, wait=wait)
    if json_out:
        print_json({**done.audit(), "complete": done.complete})
    else:
        audit = done.audit()
        console.print(
            f"erased {audit['records']:,} prediction records and {audit['feedback_records']:,} "
            f"feedback records from {audit['files']} files (audited)",
            highlight=False,
        )
    if not done.complete:
        fail(
            f"{done.audit()['left_in_live_segments']} matching records are in live segments "
            "that their servers did not close in time (or a server without an artifact "
            "store, which never compacts); run the same erase again once they close (within "
            "VIGIL_CAPTURE_SEGMENT_SECONDS)"
        )


@capture_app.command("keygen")
def keygen(
    key_id: str = typer.Argument(..., help="The new key's id (1-32 letters, digits, . _ -)."),
    key_file: Path = typer.Option(
        ..., "--file", help="The key file (VIGIL_CAPTURE_ENCRYPTION_KEY_FILE); created 0600."
    ),
) -> None:
    """Put a new random AES-256 key first in the key file (the key that encrypts from the
    next start on; the others still decrypt). The key is written only to the file."""
    from vigil.capture.crypt import KeyRing, new_key_line
    from vigil.console import fail
    from vigil.errors import ConfigurationError

    old = key_file.read_text() if key_file.exists() else ""
    try:
        ids = KeyRing.parse(old, source=str(key_file)).ids if old.strip() else []
        line = new_key_line(key_id)
    except ConfigurationError as exc:
        fail(exc.message)
        return
    if key_id in ids:
        fail(f"{key_file} already has a key {key_id!r}; choose another id")
    tmp = key_file.with_name(f".{key_file.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(line + "\n" + old)
    os.replace(tmp, key_file)
    console.print(f"key {key_id!r} added first in {key_file} (keys: {', '.join([key_id, *ids])})")


@capture_app.command("rekey")
def rekey(
    wait: float = WAIT_LIVE,
    json_out: bool = JSON,
) -> None:
    """Rewrite every file of the inference and feedback logs that is not under the key
    file's first key (plain files included), keeping the hash chains valid. Then the other
    keys can be dropped from the key file."""
    from vigil.console import fail

    vigil = services()
    codec = vigil.log_codec
    if codec is None:
        fail("set VIGIL_CAPTURE_ENCRYPTION_KEY_FILE to the key file first")
        return
    done = vigil.rekey_log(wait=wait)
    rewritten, left, current = done.rewritten, done.live, done.current
    under = f"key {codec.keys.primary!r}" if codec.encrypt else "no key (plain)"
    if json_out:
        print_json({"key": under, "rewritten": rewritten, "current": current, "live": left})
    else:
        console.print(
            f"rewrote {len(rewritten)} files under {under}; {current} already were",
            highlight=False,
        )
    if left:
        fail(
            f"{len(left)} live segments were still being written (by servers started with "
            "the old key file, or without an artifact store); restart those servers and run "
            "vigil capture rekey again"
        )


def install(app: typer.Typer) -> None:
    app.add_typer(capture_app)
