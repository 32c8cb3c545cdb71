"""Packages whose public names load on first use, through one module ``__getattr__``.

>>> getattr_ = lazy_exports("email", {"Parser": "parser"})
>>> getattr_("Parser").__module__
'email.parser'
>>> getattr_("nothing")
Traceback (most recent call last):
AttributeError: module 'email' has no attribute 'nothing'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``name`` is imported from
    ``package.<modules[name]>`` when first asked for, so importing the package stays cheap
    (a serving worker must not pay for PyArrow or scikit-learn on its way to ready)."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
