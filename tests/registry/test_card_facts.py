"""A version's model card facts: given at registration, edited later, audited."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vigil.errors import ValidationError
from vigil.registry import CARD_FIELDS, Registry


def test_card_facts_are_stored_edited_and_audited(
    local_registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    mv = local_registry.register_version(
        "churn", make_bundle(), card={"purpose": "  who will leave ", "owner": "growth"}
    )
    assert mv.card == {"purpose": "who will leave", "owner": "growth"}
    assert local_registry.get_version("churn", 1).card == mv.card

    edited = local_registry.update_card(
        "churn", 1, {"owner": "", "limitations": "not for\nB2B accounts"}
    )
    assert edited.card == {"purpose": "who will leave", "limitations": "not for\nB2B accounts"}
    (event, *_) = local_registry.audit("churn")
    assert (event.action, event.entity_name, event.actor) == ("update_card", "churn/1", "tester")
    assert event.before == {"limitations": None, "owner": "growth"}
    assert event.after == {"limitations": "not for\nB2B accounts", "owner": None}

    # The same facts again change nothing and audit nothing.
    local_registry.update_card("churn", 1, {"limitations": "not for\nB2B accounts"})
    assert local_registry.audit("churn")[0].id == event.id


def test_bad_card_facts_are_refused(
    local_registry: Registry, make_bundle: Callable[..., Path]
) -> None:
    assert CARD_FIELDS == ("purpose", "owner", "intended_use", "limitations")
    with pytest.raises(ValidationError, match="unknown model card field 'authors'"):
        local_registry.register_version("churn", make_bundle(), card={"authors": "me"})
    local_registry.register_version("churn", make_bundle())
    with pytest.raises(ValidationError, match="must be text"):
        local_registry.update_card("churn", 1, {"owner": 7})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="at most 20,000"):
        local_registry.update_card("churn", 1, {"purpose": "x" * 20_001})
    assert local_registry.get_version("churn", 1).card == {}
