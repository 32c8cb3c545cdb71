"""Labels read from files and feedback, as the model's own class values."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_classes(values: np.ndarray, classes: Any) -> np.ndarray:
    """``values`` as the model's class values: a label read as text (``"1"`` from a CSV
    file or a JSON body) becomes the class ``1``; numbers pass unchanged. A label that is no
    class stays as it is, in an object array (never coercing the others to text).

    >>> as_classes(np.array(["1", "0"], dtype=object), [0, 1]).tolist()
    [1, 0]
    >>> as_classes(np.array(["1", "maybe"], dtype=object), [0, 1]).tolist()
    [1, 'maybe']
    """
    if not classes or values.dtype.kind not in "OUS":
        return values
    by_text = {str(c): c for c in classes}
    mapped = [by_text.get(str(v), v) for v in values.tolist()]
    if len({type(v) for v in mapped}) > 1:
        return np.array(mapped, dtype=object)
    return np.asarray(mapped)
