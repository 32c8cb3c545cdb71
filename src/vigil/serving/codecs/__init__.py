"""Protocol adapters: each decodes its bodies into raw tables for the data plane and encodes
:class:`~vigil.serving.dataplane.Prediction` back; none holds serving logic of its own."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.serving.dataplane import DataPlane, Prediction
    from vigil.serving.http import Request
    from vigil.serving.provider import ServedModel
    from vigil.serving.validation import RawTable


def predict_served(
    dp: DataPlane,
    req: Request,
    served: ServedModel,
    table: RawTable,
    *,
    want_proba: bool = False,
    passthrough: Mapping[str, Sequence[Any]] | None = None,
) -> Coroutine[Any, Any, Prediction]:
    """Predict ``table`` with the model version a route resolved, the call described for
    the inference log by ``req`` (request id, route, API key). Returns the data plane's
    coroutine itself: no extra frame on the hot path."""
    return dp.predict(
        served.name,
        None,
        table,
        want_proba=want_proba,
        request_id=req.request_id,
        served=served,
        route=req.route,
        key_id=req.key_id,
        passthrough=passthrough,
    )
