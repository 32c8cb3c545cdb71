"""The transport-free core of serving: resolve a model, validate, batch, predict.

Every protocol adapter (native JSON, Open Inference Protocol v2, MLflow) decodes its body
into a raw table and calls :meth:`DataPlane.predict`; nothing here knows about HTTP.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any

from vigil.errors import ServiceUnavailableError, ValidationError
from vigil.serving.config import ServingSettings

if TYPE_CHECKING:
    import numpy as np

    from vigil.serving.provider import ModelProvider, ServedModel
    from vigil.serving.validation import RawTable

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(header: str | None) -> str:
    """The client's ``X-Request-ID`` when it is a safe token, else a fresh uuid4 hex.

    >>> request_id_from("abc-123")
    'abc-123'
    >>> len(request_id_from("bad id\\n"))
    32
    """
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


@dataclass(slots=True)
class Prediction:
    """The answer to one predict call, before any protocol encodes it."""

    request_id: str
    model: str
    version: int
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    classes: list[Any] | None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent validating, queued in the batcher and in the model call."""


class DataPlane:
    """Answers predictions and metadata questions for the models a provider serves."""

    def __init__(self, provider: ModelProvider, *, settings: ServingSettings | None = None):
        self.provider = provider
        self.settings = settings or ServingSettings()

    # -- lifecycle -----------------------------------------------------------------------

    async def startup(self) -> None:
        await self.provider.start()

    async def shutdown(self) -> None:
        await self.provider.stop()

    @property
    def live(self) -> bool:
        return True

    @property
    def ready(self) -> bool:
        return self.provider.ready

    # -- models --------------------------------------------------------------------------

    def model(self, name: str, selector: str | None = None) -> ServedModel:
        """The served version ``selector`` picks; raises a 404-class error when there is none."""
        return self.provider.get(name, selector)

    def models(self) -> list[ServedModel]:
        return self.provider.list()

    def model_ready(self, name: str, selector: str | None = None) -> bool:
        return self.provider.get(name, selector).ready

    # -- predict -------------------------------------------------------------------------

    async def predict(
        self,
        name: str,
        selector: str | None,
        table: RawTable,
        *,
        want_proba: bool = False,
        request_id: str | None = None,
        served: ServedModel | None = None,
        route: str = "",
        key_id: str | None = None,
        variant: str | None = None,
        endpoint: str | None = None,
    ) -> Prediction:
        """Validate ``table`` against the model's signature and predict it (batched).

        ``served`` skips the lookup when the caller already resolved the model. ``route``,
        ``key_id``, ``endpoint`` and ``variant`` (the experiment endpoint and the arm that
        chose the model) describe the call for the inference log.
        """
        model = served or self.provider.get(name, selector)
        if not model.ready:
            raise ServiceUnavailableError(
                f"model {model.name} version {model.version} is still loading; retry shortly"
            )
        if want_proba and not model.has_proba:
            raise ValidationError(
                f"model {model.name} version {model.version} has no class probabilities; "
                "ask without return_proba / predict_proba",
                detail={"field": "return_proba", "row": None, "expected": False, "got": True},
            )
        started = perf_counter()
        valid = model.validator.validate(table)
        validated = perf_counter()
        result = await model.batcher.submit(valid.X, valid.n_rows, want_proba)
        return Prediction(
            request_id=request_id or uuid.uuid4().hex,
            model=model.name,
            version=model.version,
            predictions=result.predictions,
            probabilities=result.probabilities,
            classes=model.classes,
            timings={
                "validate": validated - started,
                "queue": result.queue_seconds,
                "predict": result.predict_seconds,
                "batch_rows": float(result.batch_rows),
            },
        )
