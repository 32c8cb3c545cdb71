"""Demo stage: a short A/B experiment between two model versions with simulated rewards,
ending in ``vigil experiment status``'s table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vigil.demo._data import MODEL_NAME
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore

ENDPOINT = "checkout"
REQUESTS = 600
REWARD_RATE = {"a": 0.10, "b": 0.16}
"""Simulated conversion rate behind each variant (b, the challenger, converts better)."""


def register_challenger(v: Any, reference: Any, console: Console) -> int:
    """Register a second version (a stronger-regularised model) and alias it ``challenger``."""

    features = reference.drop(columns=["target"])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000))
    model.fit(features, reference["target"])
    mv = v.register(
        model,
        name=MODEL_NAME,
        reference=reference,
        target="target",
        alias="challenger",
        description="challenger: stronger regularisation",
    )
    console.print(f"   registered [bold]models:/{MODEL_NAME}/{mv.version}[/] as 'challenger'")
    return int(mv.version)


def run_experiment(v: Any, url: str, rows: Any, console: Console) -> dict[str, int]:
    """Create a 50/50 endpoint over production and challenger, send traffic from distinct
    users with simulated rewards as feedback, and print the experiment status."""

    config = parse_endpoint(
        {
            "name": ENDPOINT,
            "variants": [
                {"name": "a", "model": f"models:/{MODEL_NAME}@production"},
                {"name": "b", "model": f"models:/{MODEL_NAME}@challenger"},
            ],
            "policy": {"kind": "split", "weights": {"a": 50, "b": 50}},
            # A fixed salt (a real endpoint gets a random one): the same users land on the
            # same variants in every run, so every run tells the same story.
            "salt": "vigil-demo",
        }
    )
    EndpointStore(v).put(config, actor="demo")
    console.print(
        f"   endpoint [bold]{ENDPOINT}[/]: split 50/50 between a (production) and b "
        f"(challenger), sticky by the X-Unit-ID header"
    )
    rng = np.random.default_rng(11)
    records = rows.to_dict(orient="records")
    served: dict[str, int] = {"a": 0, "b": 0}
    feedback: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(REQUESTS):
            row, headers = records[i % len(records)], {"x-unit-id": f"user-{i}"}
            # The first user's request waits for the server to pick the endpoint up: every
            # request the table counts is one of the story's users.
            r = _wait_for_endpoint(http, row, headers) if i == 0 else _predict(http, row, headers)
            r.raise_for_status()
            body = r.json()
            variant = body["variant"]
            served[variant] += 1
            reward = float(rng.random() < REWARD_RATE[variant])
            feedback.append({"request_id": body["request_id"], "reward": reward})
        http.post("/v1/feedback", json={"feedback": feedback}).raise_for_status()
    console.print(
        f"   {REQUESTS} requests from {REQUESTS} users (a {served['a']}, b {served['b']}), "
        "a simulated conversion sent back as reward for each"
    )
    env = {
        **os.environ,
        "VIGIL_HOME": str(v.settings.home),
        "COLUMNS": str(max(console.width, 100)),
    }
    console.print(f"   [bold]vigil experiment status {ENDPOINT}[/]")
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "experiment", "status", ENDPOINT],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo: vigil experiment status failed: {done.stderr.strip()}")
    console.print(done.stdout.rstrip(), highlight=False, markup=False, soft_wrap=True)
    return served


def _predict(http: Any, row: dict[str, Any], headers: dict[str, str]) -> Any:
    return http.post(f"/v1/endpoints/{ENDPOINT}/predict", json={"inputs": row}, headers=headers)


def _wait_for_endpoint(
    http: Any, row: dict[str, Any], headers: dict[str, str], timeout: float = 30.0
) -> Any:
    """The server notices new endpoints (and loads their models) within a few seconds: send
    the request until the endpoint routes it (a 404 or 503 before that is neither routed
    nor logged), and return that answer."""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = _predict(http, row, headers)
        if r.status_code not in (404, 503):
            return r
        time.sleep(0.2)
    raise SystemExit(f"demo: the server did not pick up endpoint {ENDPOINT} in {timeout:.0f} s")
