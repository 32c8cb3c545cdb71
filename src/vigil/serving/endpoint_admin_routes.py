"""The admin REST API over experiment endpoints: create, update, show, list, status, conclude."""

from __future__ import annotations

from typing import Any

from vigil.serving.http import Route

ROUTES: list[Route] = []
SCHEMAS: dict[str, Any] = {}
