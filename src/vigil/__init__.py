"""vigil: take a trained model to production and keep watch over it."""

from __future__ import annotations

__version__ = "0.1.0"
