"""Micro-batching: joined calls, each request gets its own rows, lone requests do not wait."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from tests.serving.conftest import CLF_FEATURES, Models, ServerThread, records

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
