"""Off-policy evaluation from the log of a real server: an epsilon-greedy endpoint routes
requests, logs each one's propensity, learns from Bernoulli rewards sent as feedback; the
log then estimates what other policies would have earned, whose true values are known."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
from tests._waiting import wait_for
from tests.experiments._endpoints import (
    ConstantClassifier,
    create_endpoint,
    make_vigil,
    register,
    row,
)
from tests.serving.conftest import ServerThread
from typer.testing import CliRunner

from vigil.app import reset_default
from vigil.capture.reader import read_capture
from vigil.cli import app as cli
from vigil.errors import InvalidParameterError
from vigil.experiments.off_policy import evaluate_policy
from vigil.experiments.state import SqlPolicyState
from vigil.serving.registry_provider import RegistryProvider

RATES = {"a": 0.2, "b": 0.6, "c": 0.3}
EPSILON = 0.5
REQUESTS = 300
BATCH = 25
TARGETS = {
    "uniform": float(np.mean(list(RATES.values()))),
    "variant:b": RATES["b"],
    "weights:a=1,c=1": (RATES["a"] + RATES["c"]) / 2,
}
LEVEL = 0.999
"""Nine intervals are checked: at 99.9 % each, a correct estimator fails this test less
than once in a hundred runs (the routing's timing makes the log differ from run to run)."""


def test_epsilon_greedy_log_estimates_other_policies_within_their_intervals(
    vigil_home: Path,
) -> None:
    reset_default()
    vigil = make_vigil(vigil_home)
    for value in (0, 1, 0):
        register(vigil, "arm", ConstantClassifier(value), alias="production")
    create_endpoint(
        vigil,
        {
            "name": "offers",
            "variants": [{"name": v, "model": f"models:/arm/{i}"} for i, v in enumerate(RATES, 1)],
            "policy": {"kind": "epsilon_greedy", "epsilon": EPSILON, "refresh_s": 0.05},
        },
    )
    rng = np.random.default_rng(7)
    served = vigil.serving_app(RegistryProvider(vigil, poll_interval=0.2))
    state = SqlPolicyState(vigil.database)
    chosen: list[str] = []
    with ServerThread(served) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        pending: list[dict[str, object]] = []
        for i in range(REQUESTS):
            answer = http.post("/v1/endpoints/offers/predict", json={"instances": [row()]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            chosen.append(body["variant"])
            reward = float(rng.random() < RATES[body["variant"]])
            pending.append({"request_id": body["request_id"], "reward": reward})
            if (i + 1) % BATCH == 0:  # the bandit learns as traffic flows
                sent = http.post("/v1/feedback", json={"feedback": pending})
                assert sent.status_code == 200 and sent.json()["accepted"] == BATCH, sent.text
                pending = []
                # The worker flushes its counters about twice a second: wait for them, so
                # the policy learns at the pace of the traffic, not of this machine's load.
                wait_for(
                    lambda n=i + 1: (
                        sum(s.reward_count for s in state.stats("offers").values()) == n
                    ),
                    30,
                    what="the rewards to be counted",
                    interval=0.02,
                )
    # The bandit learnt: most traffic went to b, the rest was spread by exploration.
    assert chosen[-100:].count("b") > 45  # uniform gives 33, learnt 67

    log = read_capture("arm", store=vigil.artifacts, log_dir=vigil.capture_dir)
    logged = log[log["endpoint"] == "offers"]
    assert len(logged) == REQUESTS
    propensity = logged["propensity"].to_numpy(np.float64)
    # Exact epsilon-greedy chances: eps/3 for an explored arm, 1 - eps + eps/3 for the best.
    explore, exploit = EPSILON / 3, 1 - EPSILON + EPSILON / 3
    assert np.all(
        np.isclose(propensity, explore)
        | np.isclose(propensity, exploit)
        | np.isclose(propensity, 1 / 3)
        | np.isclose(propensity, EPSILON / 3 + (1 - EPSILON) / 2)
    )

    for policy, truth in TARGETS.items():
        report = evaluate_policy(vigil, "offers", policy, level=LEVEL)
        assert (report.requests, report.rewarded, report.without_propensity) == (REQUESTS,) * 2 + (
            0,
        )
        assert [e.method for e in report.estimates] == ["ips", "snips", "doubly-robust"]
        for e in report.estimates:
            assert e.low <= truth <= e.high, (policy, e)
            assert e.high - e.low < 0.5, (policy, e)  # an interval that says something
    # Always-b rests on the requests b got (weights 1/propensity vary a little between them).
    always_b = evaluate_policy(vigil, "offers", "variant:b")
    got_b = chosen.count("b")
    assert 0.7 * got_b < always_b.estimates[0].effective_n <= got_b + 1e-9

    vigil.database.dispose()
    runner = CliRunner()
    shown = runner.invoke(
        cli, ["experiment", "evaluate", "offers", "--policy", "uniform", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["rewarded"] == REQUESTS
    assert [e["method"] for e in data["estimates"]] == ["ips", "snips", "doubly-robust"]
    table = runner.invoke(cli, ["experiment", "evaluate", "offers", "--policy", "variant:b"])
    assert table.exit_code == 0 and "doubly-robust" in table.stdout, table.output
    bad = runner.invoke(cli, ["experiment", "evaluate", "offers", "--policy", "variant:z"])
    # main() turns the error into one line; the runner sees the typed error it prints.
    assert isinstance(bad.exception, InvalidParameterError)
    assert "no variant 'z' (variants: a, b, c)" in bad.exception.message
    reset_default()
