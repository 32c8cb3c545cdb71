"""The admin REST API over the registry (list, show, set alias, rollback) and API keys."""

from __future__ import annotations

from typing import Any

from vigil.serving.http import Route

ROUTES: list[Route] = []
SCHEMAS: dict[str, Any] = {}
