"""``vigil card MODEL_URI``: a model card, as a self-contained HTML page and/or Markdown.

Without ``--html`` or ``--md`` the Markdown goes to standard output. A bad URI or an unknown
model, version or alias is one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, print_json, shown


def card(
    model_uri: str = typer.Argument(
        ..., help="The version: models:/NAME/VERSION or models:/NAME@ALIAS."
    ),
    html: Path = typer.Option(
        None, "--html", help="Write the card as one self-contained HTML page here."
    ),
    md: Path = typer.Option(None, "--md", help="Write the card as Markdown here."),
    windows: int = typer.Option(
        12, "--windows", min=1, max=1000, help="Monitoring windows shown (the newest)."
    ),
    alerts: int = typer.Option(
        20, "--alerts", min=1, max=1000, help="Alert events shown (the newest)."
    ),
    events: int = typer.Option(
        30, "--events", min=1, max=1000, help="Audit entries and alias moves shown (the newest)."
    ),
    json_out: bool = JSON,
) -> None:
    """Write the model card of a version: purpose, owner, intended use and limitations,
    lineage, signature, metrics, baseline charts, importance, fairness, monitoring, alerts,
    experiments and promotions."""
    from vigil.card import card_data, gather, render_html, render_markdown
    from vigil.card.sections import sections

    found = gather(services(), model_uri, windows=windows, alerts=alerts, events=events)
    if html is not None:
        html.write_text(render_html(found), encoding="utf-8")
    if md is not None:
        md.write_text(render_markdown(found), encoding="utf-8")
    if json_out:
        data = card_data(found, sections(found))
        print_json({**data, "html": str(html) if html else None, "md": str(md) if md else None})
        return
    if html is None and md is None:
        typer.echo(render_markdown(found), nl=False)
        return
    for path in (html, md):
        if path is not None:
            console.print(f"model card written to {shown(path)}", highlight=False, soft_wrap=True)


def install(app: typer.Typer) -> None:
    app.command()(card)
