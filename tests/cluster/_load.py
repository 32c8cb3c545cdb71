"""Client load through the load balancer: threads posting with their own request ids,
remembering when each request was sent and what it was answered."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests._waiting import wait_for


@dataclass(frozen=True)
class Answer:
    request_id: str
    sent: float  # time.monotonic() when the request went out
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    body: Any = None


@dataclass
class Load:
    """``threads`` clients posting ``body`` to ``url + path`` (keep-alive connections, as a
    real client's) until :meth:`stop`; ``prefix`` starts every request id."""

    url: str
    path: str
    body: dict[str, Any]
    threads: int = 4
    prefix: str = "c"
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._client, args=(n,), daemon=True)
            for n in range(self.threads)
        ]

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                rid = f"{self.prefix}{n}-{uuid.uuid4().hex[:12]}"
                sent = time.monotonic()
                try:
                    r = http.post(self.path, json=self.body, headers={"x-request-id": rid})
                    answer = Answer(rid, sent, r.status_code, r.json() if r.content else None)
                except httpx.TransportError as exc:
                    answer = Answer(rid, sent, 0, repr(exc))
                with self._lock:
                    self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.snapshot())

    def failed(self) -> list[Answer]:
        return [a for a in self.snapshot() if a.status != 200]

    def answered(self) -> list[str]:
        """Request ids answered 200, in order."""
        return [a.request_id for a in self.snapshot() if a.status == 200]

    def wait(self, more: int, timeout: float = 60.0) -> None:
        """Until ``more`` further answers (of any status) came back."""
        start = len(self.snapshot())
        wait_for(lambda: len(self.snapshot()) - start >= more, timeout, what=f"{more} more answers")
