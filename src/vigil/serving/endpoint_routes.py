"""Experiment endpoints: ``POST /v1/endpoints/{endpoint}/predict`` and its v2/MLflow twins."""

from __future__ import annotations

from typing import Any

from vigil.serving.http import Route

ROUTES: list[Route] = []
SCHEMAS: dict[str, Any] = {}
