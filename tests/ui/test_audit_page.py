"""The audit page's filters and keyset pages over a real audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.serving.test_auth import register_churn

from vigil.audit import read_audit
from vigil.errors import ValidationError
from vigil.ui.pages.audit import audit_page


def test_filters_and_pages_walk_the_log_newest_first(tmp_path: Path) -> None:
    vigil = register_churn(tmp_path / "home")
    registry = vigil.registry.acting_as("ada")
    for version in (2, 1, 2):
        registry.set_alias("churn", "staging", version)
    with vigil.database.session() as session:
        log = read_audit(session, limit=1000)
    everything = [e.id for e in log]
    by_ada = [e.id for e in log if e.actor == "ada"]
    assert len(by_ada) == 3

    seen: list[int] = []
    query = {"actor": "ada", "model": "churn", "action": "set_alias", "since": "2000-01-01"}
    while True:
        page = audit_page(vigil.database, query, size=2)
        seen += [r.id for r in page.rows]
        if page.next_before is None:
            break
        query = {**query, "before": str(page.next_before)}
    assert seen == by_ada  # newest first, each once
    assert [r.id for r in audit_page(vigil.database, {}, size=1000).rows] == everything
    assert audit_page(vigil.database, {"until": "2000-01-01"}, size=10).rows == []
    with pytest.raises(ValidationError, match="must be a date"):
        audit_page(vigil.database, {"since": "last week"}, size=10)
    with pytest.raises(ValidationError, match="event id"):
        audit_page(vigil.database, {"before": "-1"}, size=10)
