"""``python -m bench.serving [--quick]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.serving.runner import main

parser = argparse.ArgumentParser(prog="python -m bench.serving")
parser.add_argument("--quick", action="store_true", help="3 s per point instead of 10 s")
parser.add_argument(
    "--only",
    default=None,
    help="comma-separated cases to run (e.g. vigil-grpc,grpc-constant); default: all",
)
parser.add_argument("--seconds", type=float, default=None, help="seconds per point")
parser.add_argument(
    "--rounds", type=int, default=1, help="interleaved rounds (medians are reported)"
)
parser.add_argument("--output", type=Path, default=None, help="the JSON report's path")
args = parser.parse_args()
main(
    quick=args.quick,
    only=set(args.only.split(",")) if args.only else None,
    seconds=args.seconds,
    rounds=args.rounds,
    **({"output": args.output} if args.output else {}),
)
