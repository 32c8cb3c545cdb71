"""``python -m bench.serving [--quick]``."""

from __future__ import annotations

import argparse

from bench.serving.runner import main

parser = argparse.ArgumentParser(prog="python -m bench.serving")
parser.add_argument("--quick", action="store_true", help="3 s per point instead of 10 s")
main(quick=parser.parse_args().quick)
