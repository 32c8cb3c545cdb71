"""What a serving worker imports on its way to ``/readyz``: the cold start's budget.

A registry-backed worker serving one ONNX model is started through its ASGI lifespan in a
fresh interpreter; what is in ``sys.modules`` once startup completes is what every start
pays for. The statistics and storage stacks (pandas, PyArrow, SciPy, scikit-learn, fsspec), the
``onnx`` package (ONNX Runtime alone runs the model) and the PostgreSQL dialect of a SQLite
registry must not be among them. The capture's feedback store and compactor, which do need
PyArrow, are built after startup (the test holds that step back, then takes it, to see that
it works); they are started only once the worker has said it is ready. The worker is built
as ``vigil serve`` builds it (``workers.worker_app``), so the collector is off until the heap
is frozen at ready, without a full collection on the way.

A worker serving a scikit-learn model through skops imports scikit-learn (the model needs
it whatever reads the file), but neither fsspec (a local artifact store reads with plain
file calls) nor skops' trust lists computed afresh (they come from vigil's cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from vigil.app import Vigil
from vigil.settings import load_settings

HEAVY = [
    "fsspec",
    "onnx",
    "pandas",
    "pyarrow",
    "scipy",
    "sklearn",
    "sqlalchemy.dialects.postgresql",
]
NOT_FOR_SKOPS = ["fsspec", "onnx", "onnxruntime", "sqlalchemy.dialects.postgresql"]

_START = """
import asyncio, gc, json, sys
from vigil.serving.capture_runtime import CaptureRuntime
from vigil.serving.workers import worker_app

async def _held_back(self):  # the deferred build, held back until the check is done
    return None

CaptureRuntime._background = _held_back
order = []  # the lifespan's messages and the capture's start, in the order they happened
_start_capture = CaptureRuntime.start

def _recorded_start(self):
    order.append("capture started")
    return _start_capture(self)

CaptureRuntime.start = _recorded_start

async def main():
    full_collections = gc.get_stats()[2]["collections"]
    app = worker_app()
    collecting_while_starting = gc.isenabled()
    inbox, sent = asyncio.Queue(), asyncio.Queue()

    async def send(message):
        order.append(message["type"])
        await sent.put(message["type"])

    lifespan = asyncio.create_task(app._lifespan(inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await sent.get()
    ready = sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)
    frozen = gc.get_freeze_count()
    full_collections_to_ready = gc.get_stats()[2]["collections"] - full_collections
    collecting_at_ready = gc.isenabled()
    skops_trust = sys.modules.get("vigil.bundle.flavors._skops_trust")
    served = len(app.dataplane.models())
    runtime = app.dataplane.capture
    feedback = runtime.feedback  # first use builds it (importing PyArrow)
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan
    print(json.dumps({
        "sent": [started, await sent.get()],
        "served": served,
        "at_ready": ready,
        "frozen_at_ready": frozen,
        "full_collections_to_ready": full_collections_to_ready,
        "order": order,
        "collecting_while_starting": collecting_while_starting,
        "collecting_at_ready": collecting_at_ready,
        "skops_trust_from_cache": skops_trust.used_cache if skops_trust else None,
        "feedback_store": type(feedback).__name__,
        "compactor": type(runtime.compactor).__name__,
        "pyarrow_after_first_use": "pyarrow" in sys.modules,
    }))

asyncio.run(main())
"""


def _register_onnx(home: Path) -> None:
    X, y = make_classification(n_samples=300, n_features=6, random_state=2)
    model = LogisticRegression().fit(X, y)
    proto = to_onnx(model, X[:1].astype(np.float32), options={id(model): {"zipmap": False}})
    path = home / "model.onnx"
    home.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    reference = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]).assign(y=y)
    Vigil(load_settings(home=home)).register(
        str(path), name="churn", reference=reference, target="y", alias="production"
    )


def _start_worker(home: Path, modules: list[str], **env: str) -> dict[str, Any]:
    """Start a worker on ``home`` in a fresh interpreter, as ``vigil serve`` would."""
    out = subprocess.run(
        [sys.executable, "-c", _START, json.dumps(modules)],
        env={
            **os.environ,
            "VIGIL_HOME": str(home),
            "VIGIL_WORKER_MODELS": "[]",
            "VIGIL_WORKER_ALIASES": "{}",
            "VIGIL_WORKER_POLL_INTERVAL": "0",
            "VIGIL_WORKER_PROVIDER": "vigil.app:serving_app_from_environment",
            "VIGIL_SERVE_GC_FREEZE": "true",  # as `vigil serve` sets them
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sent"] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert result["served"] == 1
    # The capture's background work (feedback store, compactor, PyArrow) starts once the
    # worker has said it is ready, not on the way there.
    assert result["order"] == [
        "lifespan.startup.complete",
        "capture started",
        "lifespan.shutdown.complete",
    ]
    # The heap is frozen at ready as it is: no full collection on the way (vigil._heap).
    assert result["full_collections_to_ready"] == 0
    return result


def test_a_worker_reaches_ready_without_the_heavy_stacks(vigil_home: Path):
    _register_onnx(vigil_home)
    result = _start_worker(vigil_home, HEAVY)
    assert result["at_ready"] == []
    # Everything alive at ready (modules, the model) is out of the collector's full passes;
    # until then the collector was off (start-up allocates little that dies), and it runs
    # again from ready on.
    assert result["frozen_at_ready"] > 50_000, result["frozen_at_ready"]
    assert result["collecting_while_starting"] is False
    assert result["collecting_at_ready"] is True
    # The deferred part still works once asked for.
    assert result["feedback_store"] == "FeedbackStore"
    assert result["compactor"] == "Compactor"
    assert result["pyarrow_after_first_use"] is True


@pytest.mark.slow
def test_a_skops_worker_reaches_ready_with_its_trust_lists_cached(vigil_home: Path, tmp_path: Path):
    X, y = make_classification(n_samples=200, n_features=5, random_state=3)
    Vigil(load_settings(home=vigil_home)).register(
        LogisticRegression().fit(X, y), name="churn", alias="production"
    )
    cache = tmp_path / "xdg-cache"
    first = _start_worker(vigil_home, NOT_FOR_SKOPS, XDG_CACHE_HOME=str(cache))
    assert first["skops_trust_from_cache"] is False  # a new environment computes them once
    again = _start_worker(vigil_home, NOT_FOR_SKOPS, XDG_CACHE_HOME=str(cache))
    assert again["skops_trust_from_cache"] is True
    assert again["at_ready"] == []
    assert again["collecting_while_starting"] is False
    assert again["collecting_at_ready"] is True
    assert again["frozen_at_ready"] > 50_000, again["frozen_at_ready"]


def test_the_capture_package_names_resolve_on_first_use():
    import vigil.capture as capture
    from vigil.capture.compact import apply_retention
    from vigil.capture.sink import CaptureSink

    assert sorted(capture.__all__) == sorted(capture._MODULES)
    resolved = {name: getattr(capture, name) for name in capture.__all__}
    assert resolved["CaptureSink"] is CaptureSink
    assert resolved["apply_retention"] is apply_retention
    with pytest.raises(AttributeError, match="no_such_name"):
        capture.no_such_name  # noqa: B018


def test_an_embedded_app_leaves_the_collector_alone_unless_asked():
    """gc_freeze is off for an app built with create_app: its host program's collector
    policy is its own. (`vigil serve` turns it on; the test above sees that.)"""
    import asyncio
    import gc

    from vigil import _heap
    from vigil.serving.app import create_app
    from vigil.serving.provider import StaticProvider

    async def start_and_stop() -> list[str]:
        app = create_app(StaticProvider([]))
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[str] = []

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])

        for kind in ("lifespan.startup", "lifespan.shutdown"):
            await inbox.put({"type": kind})
        await app._lifespan(inbox.get, send)
        return sent

    before = gc.get_freeze_count()
    assert asyncio.run(start_and_stop()) == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert gc.get_freeze_count() == before
    assert _heap.settle() is False  # not enabled in this process: a no-op
    assert gc.get_freeze_count() == before


def test_a_serving_worker_caps_its_malloc_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory freed on a worker thread stays in that thread's arena: a `vigil serve` worker
    caps them before its threads start (the soak's RSS growth, docs/benchmarks.md)."""
    from vigil import _heap
    from vigil.serving import workers

    capped = subprocess.run(
        [sys.executable, "-c", "from vigil import _heap; print(_heap.limit_arenas())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert capped.stdout.strip() == "True"  # glibc, as every supported Linux image
    calls: list[int] = []
    monkeypatch.setattr(_heap, "limit_arenas", lambda count=2: calls.append(count) or True)
    monkeypatch.setenv(workers.PROVIDER_ENV, "tests.serving.test_workers:provider")
    workers.worker_app()
    assert calls == [_heap.SERVING_ARENAS]


def test_the_collector_pause_ends_at_settle_and_leaves_others_choices_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker's start-up pause (vigil._heap.pause) ends when the heap is settled, or when
    the app will not settle it; a collector someone else turned off stays off."""
    import gc

    from vigil import _heap

    monkeypatch.setattr(_heap, "_enabled", False)
    assert gc.isenabled()
    try:
        _heap.pause()
        assert not gc.isenabled()
        _heap.pause()  # the worker's own call after serve()'s: still one pause
        assert _heap.settle() is False  # not enabled: no freeze, but the pause is over
        assert gc.isenabled()
        gc.disable()  # the host program's choice
        _heap.pause()
        _heap.resume()
        assert not gc.isenabled()
    finally:
        gc.enable()
        monkeypatch.setattr(_heap, "_paused", False)


@pytest.mark.parametrize(("command", "collecting"), [("serve", False), ("model", True)])
def test_vigil_serve_pauses_the_collector_before_the_command_lines_imports(
    command: str, collecting: bool
) -> None:
    """`vigil serve` (only) turns the collector off as the command line is first imported,
    before typer, pydantic and the command modules: its start-up runs with it off until
    ready anyway."""
    code = (
        f"import sys; sys.argv = ['vigil', {command!r}]; import gc, vigil.cli; "
        "print(gc.isenabled(), 'typer' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(collecting), "True"]


def test_the_supervisor_of_several_workers_collects_as_usual(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pause `vigil serve` starts with ends in a supervisor: it serves nothing itself,
    and lives as long as the server."""
    import gc

    from vigil import _heap
    from vigil.serving import workers

    seen: list[bool] = []

    class Supervisor:
        def __init__(self, config: Any, sockets: list[Any]) -> None:
            pass

        def run(self) -> None:
            seen.append(gc.isenabled())

    monkeypatch.setattr(workers, "_supervisor_class", lambda: Supervisor)
    try:
        _heap.pause()  # as importing vigil.cli does for `vigil serve`
        workers.serve("vigil.app:serving_app_from_environment", port=0, workers=2)
    finally:
        gc.enable()
        monkeypatch.setattr(_heap, "_paused", False)
    assert seen == [True]
