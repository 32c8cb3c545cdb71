"""``POST /v1/feedback``: labels and rewards joined to the inference log by request id."""

from __future__ import annotations

from typing import Any

from vigil.serving.http import Route

ROUTES: list[Route] = []
SCHEMAS: dict[str, Any] = {}
