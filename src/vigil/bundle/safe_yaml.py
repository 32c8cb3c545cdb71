"""YAML from a model file, parsed within bounds.

``yaml.safe_load`` builds no Python objects, but it honours anchors and aliases, so about
1 KB of YAML can stand for a billion values ("billion laughs"): harmless while it stays a
graph of shared lists, ruinous once anything walks it (writing the manifest took 6.7 GB).
:func:`load_untrusted_yaml` refuses, before anything is built:

* more than :data:`MAX_ALIASES` aliases (a model's ``MLmodel`` has none),
* a document that stands for more than :data:`MAX_VALUES` values once every alias is
  expanded, or that refers to itself,
* nesting deep enough to exhaust the parser's stack;

and, as ``safe_load`` does, every tag beyond plain YAML's (``!!python/object`` ...). The
caller bounds the text's size.

>>> load_untrusted_yaml("a: &x [1, 2]\\nb: *x", what="MLmodel")
{'a': [1, 2], 'b': [1, 2]}
"""

from __future__ import annotations

from typing import Any

import yaml

from vigil.errors import BundleError

MAX_ALIASES = 100
MAX_VALUES = 100_000


class _CountingLoader(yaml.SafeLoader):
    """``SafeLoader`` that counts the aliases it composes."""

    def __init__(self, stream: str, what: str) -> None:
        super().__init__(stream)
        self.what = what
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise BundleError(
                    f"{self.what} uses more than {MAX_ALIASES} YAML aliases (a YAML bomb); "
                    "write it without anchors and aliases"
                )
        return super().compose_node(parent, index)


def _expanded(node: yaml.Node, sizes: dict[int, int], open_: set[int], what: str) -> int:
    """How many values ``node`` stands for once aliases are expanded (memoised by node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise BundleError(f"{what} holds a recursive YAML structure (an alias to itself)")
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded(child, sizes, open_, what) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded(k, sizes, open_, what) + _expanded(v, sizes, open_, what)
    open_.discard(key)
    if total > MAX_VALUES:
        raise BundleError(
            f"{what} stands for more than {MAX_VALUES} values once its YAML aliases are "
            "expanded (a YAML bomb); write it without anchors and aliases"
        )
    sizes[key] = total
    return total


def load_untrusted_yaml(text: str, *, what: str) -> Any:
    """The YAML document in ``text``, or :class:`~vigil.errors.BundleError` naming
    ``what`` and the problem (see the module docstring)."""
    loader = _CountingLoader(text, what)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded(node, {}, set(), what)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise BundleError(f"{what} is not valid YAML: {exc}") from None
    except RecursionError:
        raise BundleError(f"{what} nests its YAML too deeply") from None
    finally:
        loader.dispose()
