"""The ``vigil`` command line."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("vigil: the CLI is being built")
