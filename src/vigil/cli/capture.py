"""``vigil capture verify``: check the compacted inference and feedback logs against their
chain manifests (:mod:`vigil.capture.chain`)."""

from __future__ import annotations

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, err_console, print_json, shown

capture_app = typer.Typer(
    help="The compacted inference log: verify its files against their hash chains.",
    no_args_is_help=True,
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


def install(app: typer.Typer) -> None:
    app.add_typer(capture_app, name="capture")
