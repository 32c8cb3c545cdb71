"""Micro-batching: joined calls, each request gets its own rows, lone requests do not wait."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from tests.serving.conftest import (
    CLF_FEATURES,
    Models,
    ServerThread,
    SklearnAdapter,
    clf_signature,
    records,
)

from vigil.serving.batching import MicroBatcher


def _histogram(text: str, name: str, labels: dict[str, str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    key = sample.name + sample.labels.get("le", "")
                    values[key] = sample.value
    return values


def test_concurrent_requests_are_batched_and_answered_with_their_own_rows(
    server: ServerThread, models: Models, provider: Any
):
    X = models.X_clf[:24]
    expected = models.clf.predict_proba(X)

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/v1/models/slow/predict",
                        json={
                            "instances": records(X[i : i + 1], CLF_FEATURES),
                            "return_proba": True,
                        },
                    )
                    for i in range(len(X))
                )
            )

    stats = provider.get("slow").batcher.stats
    responses = asyncio.run(fire())
    for i, r in enumerate(responses):
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["probabilities"], expected[i : i + 1], atol=0)
    assert stats.largest_batch > 1
    assert max(provider.get("slow").bundle.model.calls) > 1  # the model saw a joined batch
    text = httpx.get(f"{server.url}/metrics").text
    batch = _histogram(text, "vigil_batch_size", {"model": "slow", "version": "1"})
    assert batch["vigil_batch_size_count"] < batch["vigil_batch_size_sum"]  # mean batch > 1
    assert batch["vigil_batch_size_sum"] >= len(X)


def test_a_lone_request_does_not_wait_for_max_wait():
    seen: list[int] = []

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        seen.append(len(X))
        return X.sum(axis=1), None

    async def main() -> list[float]:
        batcher = MicroBatcher(predict, max_batch_size=64, max_wait=5.0)
        queued = []
        for i in range(3):  # one after the other: each is alone
            result = await batcher.submit(np.full((1, 2), float(i)), 1, False)
            assert result.predictions.tolist() == [2.0 * i] and result.batch_rows == 1
            queued.append(result.queue_seconds)
        batcher.close()
        return queued

    queued = asyncio.run(main())
    assert seen == [1, 1, 1]
    assert max(queued) < 0.5  # a tenth of max_wait: it ran at once
    assert all(q >= 0 for q in queued)


def test_one_bad_request_does_not_poison_the_batch():
    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        if (X < 0).any():
            raise ValueError("negative input")
        return X[:, 0] * 10, None

    async def main() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch_size=64, max_wait=0.0)
        jobs = [batcher.submit(np.array([[float(v)]]), 1, False) for v in (1, 2, -3, 4, 5)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        batcher.close()
        return results

    results = asyncio.run(main())
    assert isinstance(results[2], ValueError)
    assert [float(r.predictions[0]) for i, r in enumerate(results) if i != 2] == [10, 20, 40, 50]
    assert results[3].batch_rows > 1  # the others really were joined


def test_batching_disabled_makes_one_call_per_request():
    sizes: list[int] = []

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        sizes.append(len(X))
        return X[:, 0], None

    async def main() -> None:
        batcher = MicroBatcher(predict, max_batch_size=1, max_wait=0.0)
        await asyncio.gather(*(batcher.submit(np.ones((1, 1)), 1, False) for _ in range(6)))
        batcher.close()

    asyncio.run(main())
    assert sizes == [1] * 6


def _recording_model(delay: float = 0.0) -> tuple[Any, list[tuple[int, int]]]:
    """A predict function that records (thread id, rows) of every call."""
    import threading
    import time

    calls: list[tuple[int, int]] = []

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        calls.append((threading.get_ident(), len(X)))
        if delay:
            time.sleep(delay)
        return X[:, 0] + 1, None

    return predict, calls


def test_a_cheap_model_runs_on_the_event_loop_and_a_slow_one_on_its_worker_thread():
    import threading

    async def serve(delay: float) -> tuple[MicroBatcher, list[tuple[int, int]]]:
        predict, calls = _recording_model(delay)
        batcher = MicroBatcher(predict, max_batch_size=8, inline_budget=0.002)
        one, many = np.ones((1, 1)), lambda: np.ones((8, 1))
        await asyncio.get_running_loop().run_in_executor(
            batcher.executor, batcher.calibrate, one, many, False
        )
        calls.clear()
        results = await asyncio.gather(
            *(batcher.submit(np.full((1, 1), float(i)), 1, False) for i in range(5))
        )
        assert [float(r.predictions[0]) for r in results] == [1, 2, 3, 4, 5]
        batcher.close()
        return batcher, calls

    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    cheap, cheap_calls = asyncio.run(serve(0.0))
    assert cheap.cost is not None and cheap.cost.estimate(8) < 0.002
    assert cheap_calls == [(loop_thread, 5)]  # one joined call, on the event loop
    assert cheap.stats.inline_batches == 1

    slow, slow_calls = asyncio.run(serve(0.01))
    assert slow.cost is not None and slow.cost.fixed > 0.002
    assert [rows for _, rows in slow_calls] == [5]
    assert slow_calls[0][0] != loop_thread  # the worker thread
    assert slow.stats.inline_batches == 0


def test_a_request_larger_than_a_batch_runs_on_the_worker_thread():
    # The cost was measured on at most max_batch_size rows; half a million rows of a model
    # that costs nothing per row would be estimated cheap and held the loop for a second.
    import threading

    async def serve() -> tuple[MicroBatcher, list[tuple[int, int]]]:
        predict, calls = _recording_model(0.0)
        batcher = MicroBatcher(predict, max_batch_size=8, inline_budget=0.002)
        one, many = np.ones((1, 1)), lambda: np.ones((8, 1))
        await asyncio.get_running_loop().run_in_executor(
            batcher.executor, batcher.calibrate, one, many, False
        )
        calls.clear()
        await batcher.submit(np.ones((8, 1)), 8, False)
        await batcher.submit(np.ones((9, 1)), 9, False)
        batcher.close()
        return batcher, calls

    loop_thread = threading.get_ident()
    batcher, calls = asyncio.run(serve())
    assert batcher.cost is not None and batcher.cost.estimate(9) < 0.002  # cheap, yet:
    assert calls[0] == (loop_thread, 8) and calls[1][1] == 9 and calls[1][0] != loop_thread
    assert batcher.stats.inline_batches == 1


def test_a_model_that_turns_slow_moves_to_its_worker_thread_and_never_runs_twice_at_once():
    import threading
    import time

    active: list[int] = []
    overlaps: list[int] = []
    threads: list[int] = []
    delay = [0.0]

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        active.append(1)
        overlaps.append(len(active))
        threads.append(threading.get_ident())
        time.sleep(delay[0])
        active.pop()
        return X[:, 0], None

    async def main() -> MicroBatcher:
        batcher = MicroBatcher(predict, max_batch_size=4, inline_budget=0.002)
        await asyncio.get_running_loop().run_in_executor(
            batcher.executor, batcher.calibrate, np.ones((1, 1)), lambda: np.ones((4, 1)), False
        )
        delay[0] = 0.02  # ten times the budget from now on
        threads.clear()
        for _ in range(40):
            await asyncio.gather(*(batcher.submit(np.ones((1, 1)), 1, False) for _ in range(3)))
        batcher.close()
        return batcher

    loop_thread = threading.get_ident()
    batcher = asyncio.run(main())
    assert max(overlaps) == 1  # never two calls at once
    assert threads[0] == loop_thread  # calibrated cheap: the first slow call ran inline
    # then it moved to the worker thread (a probe back on the loop may fall in this run)
    assert sum(t == loop_thread for t in threads[5:]) <= 1
    assert len(threads) > 20
    assert batcher.cost is not None and batcher.cost.fixed > 0.002


def test_a_model_slow_only_on_its_worker_thread_is_probed_back_onto_the_loop(monkeypatch):
    """Time on the worker thread includes waiting for the GIL: a cheap model measured
    there can look slow. Probes on the event loop find it cheap and keep it there."""
    import threading
    import time

    from vigil.serving import batching

    monkeypatch.setattr(batching, "PROBE_INTERVAL", 0.02)
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        threads.append(threading.get_ident())
        if threading.get_ident() != loop_thread:
            time.sleep(0.01)  # as if waiting for the GIL
        return X[:, 0], None

    async def main() -> MicroBatcher:
        batcher = MicroBatcher(predict, max_batch_size=4, inline_budget=0.002)
        await asyncio.get_running_loop().run_in_executor(
            batcher.executor, batcher.calibrate, np.ones((1, 1)), lambda: np.ones((4, 1)), False
        )
        assert batcher.cost is not None and batcher.cost.fixed > 0.002  # measured slow
        threads.clear()
        for _ in range(30):
            await batcher.submit(np.ones((1, 1)), 1, False)
        batcher.close()
        return batcher

    batcher = asyncio.run(main())
    assert threads[0] != loop_thread  # began on the worker thread
    # A probe found it cheap and it stayed (a stall of the whole process on a busy machine
    # may send one call back to the thread until the next probe).
    assert threads[-10:].count(loop_thread) >= 8
    assert batcher.cost is not None and batcher.cost.fixed < 0.002


def test_a_model_far_too_slow_for_the_loop_is_never_probed_on_it(monkeypatch):
    """A probe runs one call on the event loop: for a model that is really slow (here 25
    times the budget) it would stop every other request for that long."""
    import threading
    import time

    from vigil.serving import batching

    monkeypatch.setattr(batching, "PROBE_INTERVAL", 0.01)
    threads: list[int] = []

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        threads.append(threading.get_ident())
        time.sleep(0.05)
        return X[:, 0], None

    async def main() -> MicroBatcher:
        batcher = MicroBatcher(predict, max_batch_size=4, inline_budget=0.002)
        await asyncio.get_running_loop().run_in_executor(
            batcher.executor, batcher.calibrate, np.ones((1, 1)), lambda: np.ones((4, 1)), False
        )
        threads.clear()
        for _ in range(12):  # 0.6 s: past many probe intervals
            await batcher.submit(np.ones((1, 1)), 1, False)
        batcher.close()
        return batcher

    loop_thread = threading.get_ident()
    batcher = asyncio.run(main())
    assert len(threads) == 12 and loop_thread not in threads
    assert batcher.stats.inline_batches == 0


def test_requests_arriving_on_successive_loop_turns_join_one_batch():
    predict, calls = _recording_model()

    async def main() -> list[float]:
        batcher = MicroBatcher(predict, max_batch_size=64, max_wait=1.0, inline_budget=0.01)
        batcher.calibrate(np.ones((1, 1)), lambda: np.ones((64, 1)), False)
        calls.clear()
        jobs = []
        for i in range(6):  # one new request per turn of the loop, as bytes trickle in
            jobs.append(asyncio.ensure_future(batcher.submit(np.full((1, 1), i), 1, False)))
            await asyncio.sleep(0)
        results = await asyncio.gather(*jobs)
        batcher.close()
        return [float(r.predictions[0]) for r in results]

    assert asyncio.run(main()) == [1, 2, 3, 4, 5, 6]
    assert [rows for _, rows in calls] == [6]


def test_a_calls_answers_are_logged_together_before_any_is_released():
    logged: list[list[tuple[Any, Any]]] = []
    released_before_log: list[bool] = []
    futures: list[asyncio.Future[Any]] = []

    def log(answers: list[tuple[Any, Any]]) -> None:
        released_before_log.append(any(f.done() for f in futures))
        logged.append(answers)

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        return X[:, 0] * 10, None

    async def main() -> list[float]:
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait=0.0)
        futures.extend(
            asyncio.ensure_future(batcher.submit(np.full((1, 1), float(i)), 1, False, log, i))
            for i in range(4)
        )
        results = await asyncio.gather(*futures)
        batcher.close()
        return [float(r.predictions[0]) for r in results]

    assert asyncio.run(main()) == [0, 10, 20, 30]
    assert len(logged) == 1  # one call, one log hand-off
    assert [note for note, _ in logged[0]] == [0, 1, 2, 3]
    assert [float(output[0][0]) for _, output in logged[0]] == [0, 10, 20, 30]
    assert released_before_log == [False]


def test_when_the_log_fails_every_request_of_the_call_fails_and_others_do_not_log():
    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        if (X < 0).any():
            raise ValueError("negative input")
        return X[:, 0], None

    notes: list[Any] = []

    def broken_log(answers: list[tuple[Any, Any]]) -> None:
        notes.extend(note for note, _ in answers)
        raise OSError("disk full")

    async def main() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait=0.0)
        jobs = [
            batcher.submit(np.full((1, 1), 1.0), 1, False, broken_log, "a"),
            batcher.submit(np.full((1, 1), -1.0), 1, False, broken_log, "bad"),
            batcher.submit(np.full((1, 1), 2.0), 1, False),  # a caller without a log
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        batcher.close()
        return results

    first, bad, unlogged = asyncio.run(main())
    assert isinstance(first, OSError) and str(first) == "disk full"
    assert isinstance(bad, ValueError)  # the model's own error, never logged as answered
    assert float(unlogged.predictions[0]) == 2.0
    assert notes == ["a"]


def test_a_served_linear_model_runs_on_the_loop_and_an_mlflow_pyfunc_on_its_thread(
    models: Models,
):
    """Where calls run, through the served model: a scikit-learn model's calls are cheap
    enough for the event loop; an MLflow python_function model is user code that may block
    or run an event loop of its own, so it always gets its worker thread."""
    import threading

    from vigil.bundle.model import LoadedBundle
    from vigil.serving.validation import Records

    class PyfuncAdapter(SklearnAdapter):
        flavor = "mlflow"

    X = models.X_clf[:8]
    rows = Records(records(X, CLF_FEATURES))

    async def serve(adapter: SklearnAdapter) -> tuple[Any, list[int]]:
        from vigil.serving.provider import ServedModel

        threads: list[int] = []
        predict = adapter.predict

        def recording(X: Any) -> np.ndarray:
            threads.append(threading.get_ident())
            return predict(X)

        adapter.predict = recording  # type: ignore[method-assign]
        from vigil.serving.config import ServingSettings

        # A generous budget: a busy CI machine must not make the linear model look slow.
        settings = ServingSettings(inline_max_ms=5.0)
        bundle = LoadedBundle(adapter, clf_signature(), name="m", version=1)
        served = ServedModel(bundle, settings=settings)
        await served.start()
        threads.clear()
        valid = served.validator.validate(rows)
        result = await served.batcher.submit(valid.X, valid.n_rows, False)
        np.testing.assert_array_equal(result.predictions, models.clf.predict(X))
        await served.stop()
        return served.batcher, threads

    loop_thread = threading.get_ident()
    linear, linear_threads = asyncio.run(serve(SklearnAdapter(models.clf)))
    assert linear.cost is not None and linear.cost.estimate(64) < linear.inline_budget
    assert linear_threads == [loop_thread] and linear.stats.inline_batches == 1

    pyfunc, pyfunc_threads = asyncio.run(serve(PyfuncAdapter(models.clf)))
    assert pyfunc.inline_budget == 0.0 and pyfunc.cost is None
    assert pyfunc_threads and loop_thread not in pyfunc_threads
    assert pyfunc.stats.inline_batches == 0


def test_a_model_that_takes_one_row_at_a_time_still_calibrates_and_answers():
    """An ONNX graph with a fixed batch dimension of 1 fails on a joined batch: warm-up
    must not fail on it, and joined requests are answered one call each."""
    sizes: list[int] = []

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        sizes.append(len(X))
        if len(X) != 1:
            raise ValueError(f"Got invalid dimensions for input: expected 1, got {len(X)}")
        return X[:, 0] * 3, None

    async def main() -> list[float]:
        batcher = MicroBatcher(predict, max_batch_size=16, inline_budget=0.01)
        cost = batcher.calibrate(np.ones((1, 1)), lambda: np.ones((16, 1)), False)
        assert cost is not None and cost.fixed == 0.0 and cost.per_row > 0
        results = await asyncio.gather(
            *(batcher.submit(np.full((1, 1), float(i)), 1, False) for i in range(4))
        )
        batcher.close()
        return [float(r.predictions[0]) for r in results]

    answers = asyncio.run(main())
    assert answers == [0.0, 3.0, 6.0, 9.0]
    assert sizes[-5:] == [4, 1, 1, 1, 1]  # the joined call failed, then one call each


def test_a_cheap_model_stays_on_the_loop_when_some_calls_are_slow():
    """On a shared machine a call now and then takes far longer than the model needs
    (the server was preempted during it): the median of the last calls decides, so those
    outliers do not send a cheap model to the worker thread."""
    import threading
    import time

    threads: list[int] = []
    calls = [0]

    def predict(X: Any, want_proba: bool) -> tuple[np.ndarray, None]:
        calls[0] += 1
        threads.append(threading.get_ident())
        if calls[0] > 10 and calls[0] % 4 == 0:  # every 4th call after calibration
            time.sleep(0.02)  # ten times the budget
        return X[:, 0], None

    async def main() -> MicroBatcher:
        batcher = MicroBatcher(predict, max_batch_size=4, inline_budget=0.002)
        await asyncio.get_running_loop().run_in_executor(
            batcher.executor, batcher.calibrate, np.ones((1, 1)), lambda: np.ones((4, 1)), False
        )
        threads.clear()
        for _ in range(40):
            await asyncio.gather(*(batcher.submit(np.ones((1, 1)), 1, False) for _ in range(3)))
        batcher.close()
        return batcher

    loop_thread = threading.get_ident()
    batcher = asyncio.run(main())
    assert len(threads) == 40 and all(t == loop_thread for t in threads)
    assert batcher.stats.inline_batches == 40
    assert batcher.cost is not None and batcher.cost.fixed < 0.002


def test_the_run_queue_clock_never_counts_more_than_the_time_that_passed():
    """The clock reads this thread's time spent waiting for a CPU: it never goes back and
    never grows faster than the wall clock (a sleeping thread is not waiting for a CPU)."""
    import time

    from vigil.serving.batching import RunQueueClock

    clock = RunQueueClock()
    readings = []
    for _ in range(5):
        started, before = time.perf_counter(), clock.seconds()
        time.sleep(0.01)
        readings.append((clock.seconds() - before, time.perf_counter() - started))
    assert all(0.0 <= waited <= passed + 0.001 for waited, passed in readings)
