"""The web console's cost (issue 18): how long the overview takes to build and render over
a large installation, and what a console in use costs the predictions.

The installation: ``model`` (logistic regression, served) and 99 more models, 10 versions
each (1,000 versions; the extra rows copy ``model``'s first version's, as a registry
holding many versions of small models would), ``production`` on each, and 100 monitoring
windows per model (10,000 windows) with the points a window stores (traffic, drift,
accuracy and estimated accuracy, a drift statistic per feature); 50 alerts firing.

* **render**: the overview's data (:func:`vigil.ui.pages.overview.overview`) and its page
  (the template), in this process, over that home: median and p95 of ``--repeat`` runs,
  and the same page through the server (``GET /ui``, one client, after a warm-up), its
  data read on every load.
* **serving**: the routing benchmark's server (:mod:`bench.routing`: one worker pinned
  to CPU 0 with ``vigil serve``'s defaults, capture and metrics on; wrk on CPU 1, 32
  connections, ``POST /v1/models/model/predict``) with and without a client that loads
  the overview page and its live counters (``/ui/live.json``) every
  :data:`CONSOLE_INTERVAL_S` seconds: an open console's script asks for the counters
  every 5 s, so this is a person reloading the whole page 2.5 times as often as the
  script polls; interleaved rounds, a fresh server per point, the console's settings as
  shipped (the overview's data reused for 5 s, ``VIGIL_UI_OVERVIEW_CACHE_S``). Goal:
  throughput with the console within 5 % of without.

Run: ``flock /tmp/vigil-bench.lock python -m bench.console [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.routing import CONNECTIONS, RoutingServer, _measure, prepare
from bench.serving.apps import FEATURES
from bench.serving.runner import Result, one_row, wrk_path

MODELS = 100
VERSIONS = 10
WINDOWS = 100
ALERTS = 50
CONSOLE_INTERVAL_S = 2.0


def populate(home: Path) -> None:
    """The installation described above, written straight into the SQL store."""
    from sqlalchemy import insert, select

    from vigil.app import Vigil
    from vigil.monitor.alerts import record_event
    from vigil.monitor.tables import MonitorPointRow, MonitorWindowRow
    from vigil.registry.tables import AliasRow, ModelVersionRow, RegisteredModelRow
    from vigil.settings import load_settings

    prepare(home)  # `model` versions 1 and 2, production on 1, as bench.routing serves
    vigil = Vigil(load_settings(home=home))
    db = vigil.database
    now = datetime.now(UTC)
    with db.session(write=True) as session:
        template = session.scalars(select(ModelVersionRow).limit(1)).one()
        copied = {
            c.key: getattr(template, c.key)
            for c in ModelVersionRow.__table__.columns
            if c.key not in ("id", "model_id", "version")
        }
        for m in range(1, MODELS):
            model = RegisteredModelRow(name=f"model-{m:03d}", last_version=VERSIONS)
            session.add(model)
            session.flush()
            session.execute(
                insert(ModelVersionRow),
                [{**copied, "model_id": model.id, "version": v} for v in range(1, VERSIONS + 1)],
            )
            session.add(AliasRow(model_id=model.id, alias="production", version=VERSIONS))
    names = ["model", *(f"model-{m:03d}" for m in range(1, MODELS))]
    for name in names:
        with db.session(write=True) as session:
            windows = []
            for w in range(WINDOWS):
                end = now - timedelta(hours=WINDOWS - w)
                windows.append(
                    {
                        "model": name,
                        "version": 1,
                        "route": "predict",
                        "window": "1h",
                        "window_start": end - timedelta(hours=1),
                        "window_end": end,
                        "partial": False,
                        "n_rows": 3600,
                        "n_requests": 3600,
                        "n_labelled": 100,
                        "computed_at": end,
                        "summary": {},
                    }
                )
            ids = session.scalars(
                insert(MonitorWindowRow).returning(MonitorWindowRow.id), windows
            ).all()
            points = []
            for window_id, window in zip(ids, windows, strict=True):
                base = {k: window[k] for k in ("model", "version", "route", "window")}
                base |= {
                    "window_id": window_id,
                    "window_start": window["window_start"],
                    "window_end": window["window_end"],
                    "partial": False,
                }
                for metric, value in (
                    ("traffic.requests", 3600.0),
                    ("traffic.error_rate", 0.001),
                    ("drift.dataset", float(hash(name) % 7 == 0)),
                    ("performance.accuracy", 0.91),
                    ("estimated.accuracy", 0.9),
                ):
                    points.append({**base, "metric": metric, "feature": None, "value": value})
                for feature in FEATURES[:4]:
                    points.append(
                        {**base, "metric": "drift.statistic", "feature": feature, "value": 0.1}
                    )
            session.execute(insert(MonitorPointRow), points)
    for a in range(ALERTS):
        record_event(
            db,
            rule="dataset_drift",
            status="firing",
            severity="warning",
            summary="drifted",
            labels={"model": names[a], "alertname": "dataset_drift"},
        )
    db.dispose()


def render_times(home: Path, repeat: int) -> dict[str, float]:
    """The overview built and rendered ``repeat`` times in this process (seconds)."""
    from vigil.app import Vigil
    from vigil.settings import load_settings
    from vigil.ui.pages.overview import overview
    from vigil.ui.render import Chrome, render

    vigil = Vigil(load_settings(home=home))
    chrome = Chrome(role="admin", can_act=True, actor="key:bench", auth_off=False)
    times, data_times = [], []
    size = 0
    for _ in range(repeat + 2):
        started = time.perf_counter()
        view = overview(vigil, {})
        built = time.perf_counter()
        size = len(render("overview.html", chrome=chrome, csrf="x" * 43, view=view))
        times.append(time.perf_counter() - started)
        data_times.append(built - started)
    times, data_times = times[2:], data_times[2:]  # the first builds compile the template
    vigil.database.dispose()
    return {
        "rows": float(len(view.rows)),
        "bytes": float(size),
        "median_s": statistics.median(times),
        "p95_s": sorted(times)[int(0.95 * (len(times) - 1))],
        "data_median_s": statistics.median(data_times),
    }


def page_times(home: Path, repeat: int) -> dict[str, float]:
    """Median seconds to build and render the other pages over the same installation: a
    model's page (10 versions, its 100 windows, the heatmap and series) and the audit's
    first page, in this process."""
    from vigil.app import Vigil
    from vigil.settings import load_settings
    from vigil.ui.pages.audit import audit_page
    from vigil.ui.pages.model import model_view
    from vigil.ui.render import Chrome, render

    vigil = Vigil(load_settings(home=home))
    chrome = Chrome(role="admin", can_act=True, actor="key:bench", auth_off=False)
    pages = {
        "model": lambda: render(
            "model.html", chrome=chrome, csrf="x" * 43, view=model_view(vigil, "model-050")
        ),
        "audit": lambda: render(
            "audit.html", chrome=chrome, csrf="x" * 43, view=audit_page(vigil.database, {}, size=50)
        ),
    }
    found = {}
    for name, build in pages.items():
        times = []
        for _ in range(repeat + 2):
            started = time.perf_counter()
            build()
            times.append(time.perf_counter() - started)
        found[f"{name}_median_s"] = statistics.median(times[2:])  # after the first compiles
    vigil.database.dispose()
    return found


class ConsoleClient:
    """Loads the overview and its live counters every :data:`CONSOLE_INTERVAL_S`, in a
    thread."""

    def __init__(self, url: str) -> None:
        self.url, self.loads, self.errors = url, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.seconds: list[float] = []

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                for path in ("/ui", "/ui/live.json"):
                    started = time.perf_counter()
                    r = client.get(path)
                    self.seconds.append(time.perf_counter() - started)
                    self.loads += 1
                    self.errors += r.status_code != 200
                self._stop.wait(CONSOLE_INTERVAL_S)

    def __enter__(self) -> ConsoleClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def page_through_server(home: Path, repeat: int) -> float:
    """Median seconds of ``GET /ui`` through the server (one client, after a warm-up), its
    data read on every load (``VIGIL_UI_OVERVIEW_CACHE_S=0``)."""
    saved = os.environ.get("VIGIL_UI_OVERVIEW_CACHE_S")
    os.environ["VIGIL_UI_OVERVIEW_CACHE_S"] = "0"
    try:
        server = RoutingServer(home)  # it copies the environment as it starts
    finally:
        if saved is None:
            os.environ.pop("VIGIL_UI_OVERVIEW_CACHE_S")
        else:
            os.environ["VIGIL_UI_OVERVIEW_CACHE_S"] = saved
    with server, httpx.Client(base_url=server.url, timeout=30) as client:
        times = []
        for _ in range(repeat + 2):
            started = time.perf_counter()
            r = client.get("/ui")
            times.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text[:200]
        return statistics.median(times[2:])


def main(rounds: int, seconds: float, warmup: float, repeat: int) -> dict[str, float]:
    wrk_path()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-console-") as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        populate(home)
        print(
            f"installation: {MODELS} models, {MODELS * VERSIONS} versions, "
            f"{MODELS * WINDOWS} monitoring windows, {ALERTS} alerts "
            f"(written in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        rendered = render_times(home, repeat)
        print(
            f"overview render ({rendered['rows']:.0f} rows, {rendered['bytes'] / 1024:.0f} KiB): "
            f"median {rendered['median_s'] * 1000:.1f} ms (data {rendered['data_median_s'] * 1000:.1f} ms), "
            f"p95 {rendered['p95_s'] * 1000:.1f} ms over {repeat} runs",
            flush=True,
        )
        others = page_times(home, repeat)
        print(
            f"model page render: median {others['model_median_s'] * 1000:.1f} ms; audit page: "
            f"median {others['audit_median_s'] * 1000:.1f} ms",
            flush=True,
        )
        served = page_through_server(home, repeat)
        print(f"GET /ui through the server: median {served * 1000:.1f} ms", flush=True)

        row = dict(zip(FEATURES, one_row().tolist(), strict=True))
        body = json.dumps({"instances": [row]}).encode()
        path = "/v1/models/model/predict"
        print(
            f"serving with the console in use ({seconds:.0f} s per point, {CONNECTIONS} "
            f"connections, {rounds} interleaved rounds)",
            flush=True,
        )
        results: dict[str, list[Result]] = {"console-closed": [], "console-open": []}
        loads = errors = 0
        console_seconds: list[float] = []
        for _ in range(rounds):
            for name in ("console-closed", "console-open"):
                with RoutingServer(home) as server:
                    if name == "console-open":
                        with ConsoleClient(server.url) as console:
                            results[name].append(
                                _measure(name, server, path, body, seconds, warmup)
                            )
                        loads += console.loads
                        errors += console.errors
                        console_seconds += console.seconds
                    else:
                        results[name].append(_measure(name, server, path, body, seconds, warmup))
    ratios = [
        a.requests_per_second / b.requests_per_second
        for a, b in zip(results["console-open"], results["console-closed"], strict=True)
    ]
    cpu = [
        (a.cpu_us_per_request or 0.0) / (b.cpu_us_per_request or 1.0)
        for a, b in zip(results["console-open"], results["console-closed"], strict=True)
    ]
    summary = {
        "cpu_per_request_open_over_closed_median": statistics.median(cpu),
        "render_median_ms": rendered["median_s"] * 1000,
        "render_p95_ms": rendered["p95_s"] * 1000,
        "model_page_median_ms": others["model_median_s"] * 1000,
        "audit_page_median_ms": others["audit_median_s"] * 1000,
        "served_page_median_ms": served * 1000,
        "throughput_open_over_closed_median": statistics.median(ratios),
        "console_loads": float(loads),
        "console_errors": float(errors),
        "console_load_under_load_median_ms": statistics.median(console_seconds) * 1000
        if console_seconds
        else float("nan"),
    }
    print(
        f"console open / closed: throughput {summary['throughput_open_over_closed_median']:.3f}x "
        f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}), server CPU per request "
        f"{summary['cpu_per_request_open_over_closed_median']:.3f}x "
        f"(rounds {', '.join(f'{c:.3f}' for c in cpu)}); the console client made {loads} "
        f"loads ({errors} errors), median {summary['console_load_under_load_median_ms']:.0f} ms "
        "each under full prediction load"
    )
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s, 10 renders")
    args = parser.parse_args()
    if args.quick:
        main(2, 3.0, 1.0, 10)
    else:
        main(args.rounds, args.seconds, 2.0, args.repeat)
