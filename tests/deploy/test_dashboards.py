"""The Grafana dashboards and Prometheus rules of deploy/monitoring read series vigil
really exports, and every expression returns data from a real Prometheus scraping a real
``vigil serve`` under load: predictions (drifted, so the monitor alerts), client errors,
labels and rewards, and a canary endpoint, so the experiment series exist too.

The offline tests check the dashboards' shape and that every series they name is one of
vigil's metrics or one of the rules' recordings."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests._waiting import wait_for
from tests.deploy._promql import (
    DASHBOARDS,
    MONITORING,
    ROOT,
    dashboard_queries,
    label_values,
    multi_value,
    panels,
    resolve,
    rule_queries,
    rules,
    variables,
)
from tests.monitor._data import FEATURES, make_frame, train
from tests.servers import RedisServer

import vigil.monitor.exporter
import vigil.serving.endpoints.metrics
import vigil.serving.metrics  # noqa: F401  (registers the serving metrics)
from vigil.app import Vigil
from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.monitor.prometheus import REGISTRY
from vigil.serving.server import free_port
from vigil.settings import load_settings

RATE_INTERVAL = "10s"
"""What ``$__rate_interval`` becomes here: ten scrapes at the test's 1 s interval."""


def _load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


# -- offline: shape and names ------------------------------------------------------------


def _exported_names() -> set[str]:
    """Every series name vigil's registry can expose (counters with ``_total``,
    histograms with their ``_bucket``/``_sum``/``_count``)."""
    names = set()
    for family in REGISTRY.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def _series_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    without_labels = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_ranges
    )
    return {
        name
        for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels)
        if name.startswith("vigil_") or ":" in name or name in ("up", "ALERTS")
    }


def test_dashboards_and_rules_read_only_what_vigil_exports_or_the_rules_record() -> None:
    exported = _exported_names()
    recorded = {str(rule["record"]) for rule in rules() if "record" in rule}
    for name in ("vigil_endpoint_requests_total", "vigil_process_cpu_seconds_total"):
        assert name in exported  # the names the deployment added are on the registry
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for title, expr in dashboard_queries(_load(path)):
            for name in _series_names(expr):
                used.setdefault(name, set()).add(f"{path.name}: {title}")
    for rule_name, expr in rule_queries():
        for name in _series_names(expr):
            used.setdefault(name, set()).add(f"rules.yml: {rule_name}")
    prometheus_own = {"up", "ALERTS"}
    known = exported | recorded | prometheus_own
    unknown = {n: sorted(where) for n, where in used.items() if n not in known}
    assert not unknown, unknown
    documented = (ROOT / "docs" / "deploy-monitoring.md").read_text()
    for family in REGISTRY.collect():
        assert f"`{family.name}" in documented, family.name  # the doc's table of series
    never_used = {n for n in exported if n.startswith("vigil_") and n not in used}
    # Every series vigil exports is on a dashboard, but the histograms' sums (their
    # means are not shown) and the request-duration count (read through the SLO rule).
    assert never_used == {
        "vigil_request_duration_seconds_sum",
        "vigil_queue_time_seconds_count",
        "vigil_queue_time_seconds_sum",
        "vigil_predict_duration_seconds_count",
        "vigil_predict_duration_seconds_sum",
    }, never_used


def test_dashboards_are_well_formed_and_provisioned() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "vigil-experiments.json",
        "vigil-monitoring.json",
        "vigil-serving.json",
    ]
    uids = set()
    for path in DASHBOARDS:
        board = _load(path)
        assert path.read_text() == json.dumps(board, indent=2) + "\n", path.name  # one format
        assert board["uid"] == path.stem and board["uid"] not in uids
        uids.add(board["uid"])
        assert board.get("id") is None  # provisioned boards get theirs from Grafana
        defined = {v["name"] for v in board["templating"]["list"]}
        assert "datasource" in defined
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), path.name
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["description"] and panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"]
                used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
                assert used - {"__rate_interval"} <= defined, (panel["title"], used)
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/vigil.yml").read_text()
    )["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("/vigil")
    source = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/vigil-prometheus.yml").read_text()
    )["datasources"][0]
    assert source["type"] == "prometheus" and source["isDefault"] is True


# -- live: a real vigil serve, a real Prometheus ------------------------------------------


def _binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
    )
    if found is None:
        pytest.fail(f"{name} is missing: run `apt-get install prometheus` (or `make test` as root)")
    return found


class Prometheus:
    """``prometheus`` scraping one target every second, with deploy's rules loaded."""

    def __init__(self, target: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(MONITORING / "prometheus" / "rules.yml")],
                    "scrape_configs": [
                        {"job_name": "vigil", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                _binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (params, body)
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=promql)["result"]
        return result

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, "prometheus exited; see its log"
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            return False

        wait_for(ready, 60, what="prometheus to be ready", interval=0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Load(threading.Thread):
    """Traffic until stopped: drifted predictions of churn with their labels, the canary
    endpoint's predictions with rewards, and a bad request and an unknown model now and
    then."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self.failure: BaseException | None = None

    def _post(self, http: httpx.Client, path: str, body: Any) -> httpx.Response:
        r = http.post(path, json=body)
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        return r

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc

    def _run(self) -> None:
        frame = make_frame(20_000, seed=7, shift_age=True, shift_plan=True)
        i = 0
        while not self.stop.is_set():
            # A fresh connection now and then, so both workers take requests.
            with httpx.Client(base_url=self.url, timeout=30) as http:
                for _ in range(5):
                    part = frame.iloc[(i * 10) % 19_990 :][:10]
                    rows = part[FEATURES].to_dict("records")
                    labels = part["label"].tolist()
                    for path in ("/v1/models/churn/predict", "/v1/endpoints/checkout/predict"):
                        r = self._post(http, path, {"instances": rows})
                        assert r.status_code == 200, r.text
                        rid = r.json()["request_id"]
                        feedback = [
                            {"request_id": rid, "row": k, "label": y, "reward": float(y)}
                            for k, y in enumerate(labels)
                        ]
                        assert (
                            self._post(http, "/v1/feedback", {"feedback": feedback}).status_code
                            == 200
                        )
                    if i % 3 == 0:
                        bad = {"instances": [{**rows[0], "age": "old"}]}
                        assert self._post(http, "/v1/models/churn/predict", bad).status_code == 422
                        assert self._post(http, "/v1/models/nobody/predict", bad).status_code == 404
                    i += 1
                    if self.stop.wait(0.05):
                        return


@dataclass
class Stack:
    url: str
    prometheus: Prometheus
    load: Load


def _register(home: Path) -> None:
    app = Vigil(load_settings(home=home))
    for seed, alias in ((0, "production"), (1, None)):
        trained = train(seed=seed)
        app.register(
            trained.model,
            name="churn",
            reference=trained.reference,
            target="label",
            metrics={"accuracy": trained.accuracy},
            alias=alias,
        )
    slow = {"min_duration_s": 3600, "min_requests": 1_000_000}  # the ramp stays at 50 %
    config = {
        "name": "checkout",
        "variants": [
            {"name": "stable", "model": "models:/churn/1"},
            {"name": "canary", "model": "models:/churn/2"},
        ],
        "policy": {
            "kind": "canary",
            "stable": "stable",
            "canary": "canary",
            "steps": [{"percent": 50, **slow}, {"percent": 100, **slow}],
            "promote_alias": None,
        },
    }
    EndpointStore(app).create(parse_endpoint(config), actor="test")
    app.database.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("deploy-monitoring")
    home = work / "home"
    _register(home)
    port = free_port()
    env = {
        **os.environ,
        "VIGIL_HOME": str(home),
        "VIGIL_MONITOR_INTERVAL_S": "1",
        "VIGIL_MONITOR_WINDOW": "100",  # a window every 100 predicted rows
        # churn's predictions cached (the serving board's cache panel), in a database of
        # the session's Redis no other test uses.
        "VIGIL_REDIS_URL": redis.url(9),
        "VIGIL_SERVE_CACHE": json.dumps({"churn": {"ttl": "1h", "max_entries": 100_000}}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")

        prometheus = Prometheus(f"127.0.0.1:{port}", work)
        load = Load(f"http://127.0.0.1:{port}")
        try:

            def ready() -> bool:
                assert server.poll() is None, output()
                with contextlib.suppress(httpx.TransportError):
                    return (
                        "ready in" in output()
                        and httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
                        == 200
                    )
                return False

            wait_for(ready, 120, what=lambda: f"vigil serve to be ready:\n{output()}")
            prometheus.wait_ready()
            load.start()
            yield Stack(f"http://127.0.0.1:{port}", prometheus, load)
        finally:
            load.stop.set()
            if load.is_alive():
                load.join(timeout=30)
            prometheus.stop()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _variable_values(prom: Prometheus, board: dict[str, Any]) -> dict[str, str]:
    """Each variable's values as Grafana resolves them (``label_values`` through the
    series API), in order; a variable with no value yet is left out."""
    values: dict[str, str] = {}
    for variable in variables(board):
        selector, label = label_values(variable)
        params = {}
        if selector is not None:
            try:
                params["match[]"] = resolve(selector, values, RATE_INTERVAL)
            except KeyError:
                continue  # it depends on a variable without a value yet
        found = sorted(prom.get(f"/api/v1/label/{label}/values", **params))
        if not found:
            continue
        multi = variable["multi"] or variable["includeAll"]
        values[variable["name"]] = multi_value(found) if multi else found[0]
    return values


def _has_data(result: list[dict[str, Any]]) -> bool:
    """At least one series, and at least one value that is a number (not NaN)."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


@pytest.mark.prometheus
@pytest.mark.slow
def test_every_dashboard_and_rule_expression_returns_data(stack: Stack) -> None:
    prom = stack.prometheus
    boards = {path.name: _load(path) for path in DASHBOARDS}
    pending: dict[tuple[str, str, str], str] = {}
    for name, board in boards.items():
        for title, expr in dashboard_queries(board):
            pending[(name, title, expr)] = ""
        for variable in variables(board):
            pending[(name, f"variable {variable['name']}", variable["definition"])] = ""
    for rule, expr in rule_queries():
        pending[("rules.yml", rule, expr)] = ""
    total = len(pending)
    assert total > 60

    def evaluate(key: tuple[str, str, str], values: dict[str, dict[str, str]]) -> str:
        """Why ``key`` has no data yet; empty once it has."""
        name, title, expr = key
        if title.startswith("variable "):
            return "" if title.removeprefix("variable ") in values[name] else "no value"
        try:
            # Rules are PromQL as written ($1 is label_replace's); dashboards are Grafana's.
            resolved = expr if name == "rules.yml" else resolve(expr, values[name], RATE_INTERVAL)
        except KeyError as exc:
            return f"variable {exc} has no value yet"
        result = prom.query(resolved)
        return "" if _has_data(result) else f"{resolved} -> {result}"

    def check() -> bool:
        assert stack.load.failure is None, stack.load.failure
        values = {name: _variable_values(prom, board) for name, board in boards.items()}
        keys = list(pending)
        # A few queries at once: one at a time, a busy machine makes a pass take long.
        with ThreadPoolExecutor(4) as pool:
            for key, why in zip(keys, pool.map(lambda k: evaluate(k, values), keys), strict=True):
                if why:
                    pending[key] = why
                else:
                    del pending[key]
        return not pending

    started = time.monotonic()
    wait_for(
        check,
        75,
        what=lambda: (
            f"{len(pending)} of {total} expressions to return data:\n"
            + "\n".join(f"{k[0]} / {k[1]}: {why}" for k, why in pending.items())
        ),
        interval=1.0,
    )
    print(f"{total} expressions returned data after {time.monotonic() - started:.1f} s")
    assert stack.load.statuses.get(422, 0) > 0 and stack.load.statuses.get(404, 0) > 0


@pytest.mark.prometheus
@pytest.mark.slow
def test_vigils_drift_alert_fires_through_the_prometheus_rule(stack: Stack) -> None:
    query = (
        'ALERTS{alertname="VigilMonitoringAlert", alertstate="firing", vigil_alert="dataset_drift"}'
    )

    def firing() -> list[dict[str, Any]]:
        return stack.prometheus.query(query)

    [alert] = wait_for(firing, 60, what="the VigilMonitoringAlert alert", interval=0.5)
    labels = alert["metric"]
    assert (labels["model"], labels["severity"], labels["source"]) == (
        "churn",
        "warning",
        "vigil-monitor",
    )
    # The canary stays on its first step: half the traffic, as the dashboard shows it.
    [percent] = stack.prometheus.query('vigil_endpoint_canary_percent{endpoint="checkout"}')
    assert float(percent["value"][1]) in (50.0, 0.0)  # 0: a guard rolled it back
