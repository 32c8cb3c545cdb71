"""The world a reader of vigil's docs has in front of them, built for real in a temp dir.

The docs talk about a ``churn`` model (features ``tenure``, an integer, and ``plan``, a
string; target ``churned``) with several versions and aliases, a ``fraud`` model, data
files (``train.parquet``, ``customers.csv``, ``reference.csv``, ``current.parquet`` ...),
API keys and a server on port 8000. :class:`World` makes each of them exist in a fresh
``VIGIL_HOME`` and working directory, and runs examples there through :data:`PRELUDE`,
the bash functions that stand in for nothing but ``vigil serve`` (run in the background)
and ``curl`` (made to fail on an HTTP error).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.app import Vigil
from vigil.auth.keys import KeyStore
from vigil.serving.server import free_port
from vigil.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]

ROW = '{"instances": [{"tenure": 3, "plan": "basic"}]}'
"""The tour's row, sent where an example elides its body (``--json '...'``)."""

PRELUDE = r"""
set -euo pipefail
# `vigil serve ...` in an example runs in the background on $PORT (added when the example
# names no port) and returns once /readyz answers 200; it first stops the server the
# harness or an earlier example started. Every other command is the real `vigil`.
vigil() {
  if [ "${1-}" = serve ]; then shift; vigil_serve "$@"; else command vigil "$@"; fi
}
vigil_serve() {
  stop_server
  local args=("$@")
  case " $* " in *" --port "*) ;; *) args+=(--port "$PORT") ;; esac
  setsid vigil serve "${args[@]}" >>"$WORLD/serve.log" 2>&1 </dev/null &
  echo $! >"$WORLD/serve.pid"
  for _ in $(seq 1200); do
    if command curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
      echo "(docs harness: vigil serve ${args[*]} is ready)"; return 0
    fi
    if ! kill -0 "$(cat "$WORLD/serve.pid")" 2>/dev/null; then
      echo "vigil serve ${args[*]} exited:" >&2; tail -n 30 "$WORLD/serve.log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "vigil serve ${args[*]} was not ready in 120 s" >&2; tail -n 30 "$WORLD/serve.log" >&2
  return 1
}
stop_server() {
  [ -f "$WORLD/serve.pid" ] || return 0
  local pid; pid=$(cat "$WORLD/serve.pid"); rm -f "$WORLD/serve.pid"
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
# An HTTP error fails the example (curl -s alone exits 0 on a 415 or a 500).
curl() { command curl --fail-with-body --show-error "$@"; }
"""


@dataclass
class Ran:
    command: str
    returncode: int
    output: str
    """stdout and stderr, interleaved as a terminal shows them."""


def churn_frame(n: int, seed: int) -> pd.DataFrame:
    """Customers: ``tenure`` (months, int64), ``plan`` (basic, pro, team), ``churned``."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2])
    logit = 1.0 - tenure / 24 + (plan == "basic") * 0.8
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame({"tenure": tenure.astype("int64"), "plan": plan, "churned": churned})


def churn_model(train: pd.DataFrame, c: float = 1.0) -> Pipeline:
    """A fitted churn classifier over ``tenure`` and ``plan`` (one-hot encoded)."""
    prep = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(C=c, max_iter=1000))])
    return model.fit(train[["tenure", "plan"]], train["churned"])


def people_frame(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """The drift docs' data: ``age``, ``income``, ``plan``, ``zip``, ``churned``."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + shift * 10, 10, n).round().astype("int64")
    income = rng.lognormal(10 + shift * 0.3, 0.4, n)
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5 - shift * 0.3, 0.3, 0.2 + shift * 0.3])
    zips = rng.choice(["10115", "20095", "50667", "60311", "80331"], n)
    churned = (rng.random(n) < 0.2 + shift * 0.2).astype("int64")
    return pd.DataFrame(
        {"age": age, "income": income, "plan": plan, "zip": zips, "churned": churned}
    )


@dataclass
class World:
    """A VIGIL_HOME with the docs' models and keys, a working directory with their files,
    and (once :meth:`serve` ran) a ``vigil serve`` on :attr:`port`."""

    root: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    predicted: bool = False

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def build(self) -> World:
        curl = subprocess.run(["curl", "--help", "all"], capture_output=True, text=True)
        assert "--json" in curl.stdout, "the docs' examples use curl --json: install curl 7.82+"
        self.work.mkdir(parents=True)
        train = churn_frame(600, seed=0)
        train.to_parquet(self.work / "train.parquet")
        skops.io.dump(churn_model(train, c=3.0), self.work / "model.skops")
        customers = churn_frame(2000, seed=1).drop(columns="churned")
        for name in ("customers", "big"):
            customers.to_parquet(self.work / f"{name}.parquet")
            customers.to_csv(self.work / f"{name}.csv", index=False)
        customers.to_json(self.work / "customers.jsonl", orient="records", lines=True)
        customers.head(200).to_csv(self.work / "in.csv", index=False)
        churn_frame(1000, seed=4).to_csv(self.work / "holdout.csv", index=False)
        reference, current = people_frame(1000, seed=2), people_frame(1000, seed=3, shift=1)
        for frame, name in ((reference, "reference"), (current, "current")):
            frame.to_csv(self.work / f"{name}.csv", index=False)
            frame.to_parquet(self.work / f"{name}.parquet")
        pd.DataFrame({"request_id": ["doc-label-1", "doc-label-2"], "label": [1, 0]}).to_csv(
            self.work / "labels.csv", index=False
        )

        vigil = Vigil(load_settings(home=self.home))
        # churn 1..4 (different models); production on 3, staging on 2, canary on 1, and
        # 4 a candidate no alias points to.
        for c in (1.0, 0.3, 0.1, 0.03):
            vigil.register(churn_model(train, c), name="churn", reference=train, target="churned")
        for alias, version in (("production", 3), ("staging", 2), ("canary", 1)):
            vigil.registry.set_alias("churn", alias, version)
        for c in (1.0, 0.3, 0.1):
            vigil.register(churn_model(train, c), name="fraud", reference=train, target="churned")
        vigil.registry.set_alias("fraud", "production", 3)
        keys = KeyStore.from_vigil(vigil)
        token = keys.create("predict", name="docs-harness").token
        spare = keys.create("predict", name="docs-spare").key.id
        self.env = {
            **os.environ,
            "VIGIL_HOME": str(self.home),
            "WORLD": str(self.root),
            "PORT": str(self.port),
            "TOKEN": token,
            "KEY_ID": spare,
            "ROW": ROW,
            "REQUEST_ID": "doc-feedback-1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])
            ),
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        return self

    def bash(self, script: str, *, timeout: float = 240) -> Ran:
        """Run ``script`` in bash with :data:`PRELUDE`, in the working directory."""
        done = subprocess.run(
            ["bash", "-c", PRELUDE + "\n" + script],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Ran(script, done.returncode, done.stdout)

    def python(self, code: str, *, timeout: float = 240) -> Ran:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Ran(code, done.returncode, done.stdout)

    def serve(self) -> None:
        """``vigil serve`` on :attr:`port`, unless a server runs there already."""
        if not (self.root / "serve.pid").exists():
            ran = self.bash("vigil serve")
            assert ran.returncode == 0, ran.output

    def predict(self) -> None:
        """The predictions whose request ids the docs' labels name, once: ``doc-label-1``,
        ``doc-label-2`` (labels.csv) and ``$REQUEST_ID``."""
        if self.predicted:
            return
        self.serve()
        ran = self.bash(
            "\n".join(
                "command curl -fsS -o /dev/null localhost:$PORT/v1/models/churn/predict "
                f"-H 'X-Request-ID: {rid}' --json \"$ROW\""
                for rid in ("doc-label-1", "doc-label-2", "doc-feedback-1")
            )
        )
        assert ran.returncode == 0, ran.output
        self.predicted = True

    def stop(self) -> None:
        self.bash("stop_server", timeout=60)

    def server_log(self) -> str:
        log = self.root / "serve.log"
        return log.read_text() if log.exists() else ""
