"""``vigil explain REQUEST_ID``: why the model answered a captured request as it did.

The request is found in the inference log by its id (the ``request_id`` / ``X-Request-ID``
of the answer): its rows' captured inputs are read back, the version that answered is
loaded, and each row's feature attributions are printed, largest first, with the base
value and the output they add up to (``--json`` for scripts).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import typer

from vigil.cli._options import JSON, services
from vigil.console import console, print_json, shown, styled, table

if TYPE_CHECKING:
    from vigil.app import Vigil
    from vigil.capture.lookup import Captured
    from vigil.explain.attributions import Attributions


def captured_request(app: Vigil, request_id: str, model: str | None) -> Captured:
    """The answered request ``request_id`` (of ``model``), or a 404-class error saying
    what to check."""
    from vigil.capture.lookup import CaptureLookup
    from vigil.errors import InvalidParameterError, NotFoundError

    hits = CaptureLookup(app.capture_dir, app.artifacts).find_all([request_id]).get(request_id, [])
    if model is not None:
        hits = [h for h in hits if h.model == model]
    if not hits:
        of = f" of model {model}" if model else ""
        raise NotFoundError(
            f"no answered request{of} has id {request_id!r} in the inference log; check the "
            "id (the request_id / X-Request-ID of the answer) and that capture was on",
            detail={"request_id": request_id},
        )
    answered = {(h.model, h.version) for h in hits}
    if len(answered) > 1:
        names = ", ".join(f"{m} version {v}" for m, v in sorted(answered, key=str))
        raise InvalidParameterError(
            f"several requests have id {request_id!r} ({names}); pick one with --model"
        )
    return hits[0]


def captured_rows(app: Vigil, request_id: str, hit: Captured) -> list[dict[str, Any]]:
    """The captured input rows of the request (feature name -> value), in row order."""
    from vigil.capture.reader import read_capture_table
    from vigil.errors import NotFoundError

    found = read_capture_table(
        hit.model,
        since=hit.time,
        until=hit.time + timedelta(seconds=1),
        version=hit.version,
        store=app.artifacts,
        log_dir=app.capture_dir,
    )
    records = [] if found is None else found.to_pylist()
    mine = sorted(
        (r for r in records if r["request_id"] == request_id and r.get("caller") == hit.caller),
        key=lambda r: r["row"],
    )
    if not mine:
        raise NotFoundError(f"the inputs of request {request_id!r} are no longer in the log")
    prefix = "feature."
    return [{k[len(prefix) :]: v for k, v in r.items() if k.startswith(prefix)} for r in mine]


def explain_request(
    app: Vigil, request_id: str, *, model: str | None = None, label: Any = None
) -> tuple[Captured, Attributions, list[dict[str, Any]]]:
    """The attributions of every row of a captured request, with its inputs."""
    from vigil.explain.explainers import explain, explainer_for
    from vigil.serving.validation import Records, Validator

    hit = captured_request(app, request_id, model)
    rows = captured_rows(app, request_id, hit)
    bundle = app.load(f"models:/{hit.model}/{hit.version}")
    inputs = [{n: row.get(n) for n in (f.name for f in bundle.signature.inputs)} for row in rows]
    X = Validator(bundle.signature).validate(Records(inputs)).X
    return hit, explain(explainer_for(bundle), X, label=label), inputs


def _show(
    request_id: str, hit: Captured, found: Attributions, inputs: list[dict[str, Any]]
) -> None:
    how = "exact" if found.exact else "estimated by sampling"
    console.print(
        f"request {shown(request_id)}: model {shown(hit.model)} version {hit.version}, "
        f"{found.method} attributions ({how}) of the {found.output}",
        highlight=False,
        soft_wrap=True,
    )
    outputs = found.outputs
    for i, row in enumerate(inputs):
        order = sorted(range(len(found.feature_names)), key=lambda j: -abs(found.values[i, j]))
        label = f", class {shown(found.labels[i])}" if found.labels is not None else ""
        table(
            f"row {i}{label}: base {found.base_values[i]:.4g} + attributions = "
            f"{found.output} {outputs[i]:.4g}",
            ["feature", "value", "attribution"],
            [
                (
                    shown(found.feature_names[j]),
                    shown(row[found.feature_names[j]]),
                    styled(
                        f"{found.values[i, j]:+.4g}", "green" if found.values[i, j] >= 0 else "red"
                    ),
                )
                for j in order
            ],
        )


def explain_command(
    request_id: str = typer.Argument(
        ..., metavar="REQUEST_ID", help="The request_id (X-Request-ID) a prediction answered with."
    ),
    model: str = typer.Option(
        None, "--model", help="The model that answered (when several used the same id)."
    ),
    label: str = typer.Option(
        None,
        "--class",
        help="The class whose output to explain (default: the positive class of a binary "
        "classifier, each row's predicted class otherwise).",
    ),
    json_out: bool = JSON,
) -> None:
    """Why a captured prediction came out as it did: each feature's attribution (SHAP)."""
    app = services()
    hit, found, inputs = explain_request(app, request_id, model=model, label=label)
    if json_out:
        rows = found.to_rows()
        for i, row in enumerate(rows):
            row["row"], row["inputs"] = i, inputs[i]
        print_json(
            {
                "request_id": request_id,
                "model": hit.model,
                "version": hit.version,
                "method": found.method,
                "exact": found.exact,
                "output": found.output,
                "explanations": rows,
            }
        )
        return
    _show(request_id, hit, found, inputs)


def install(app: typer.Typer) -> None:
    app.command("explain")(explain_command)
