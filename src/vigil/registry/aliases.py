"""How rollback reads an alias's history.

The history of an alias is a stack of the versions it was moved to. ``set`` pushes the
new target (when it differs from the current one), ``rollback`` pops the current target
so the alias goes back to the one below, and ``delete`` empties the stack. Rolling back
twice therefore walks back two moves rather than flipping between the last two
versions, and setting an alias after a rollback starts a new branch on top of where the
rollback left it.

>>> alias_stack([("set", 1), ("set", 2), ("set", 3), ("rollback", 2)])
[1, 2]
>>> rollback_target(alias_stack([("set", 1), ("set", 2), ("set", 3), ("rollback", 2)]))
1
>>> rollback_target(alias_stack([("set", 1)])) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable


def alias_stack(events: Iterable[tuple[str, int | None]]) -> list[int]:
    """Replay ``(action, to_version)`` events, oldest first, into the stack of targets."""
    stack: list[int] = []
    for action, to_version in events:
        if action == "set" and to_version is not None:
            if not stack or stack[-1] != to_version:
                stack.append(to_version)
        elif action == "rollback" and stack:
            stack.pop()
        elif action == "delete":
            stack.clear()
    return stack


def rollback_target(stack: list[int]) -> int | None:
    """The version a rollback moves to: the target below the current one, if any."""
    return stack[-2] if len(stack) >= 2 else None
