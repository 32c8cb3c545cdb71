"""Client load for the fault tests: threads sending predictions with their own request ids,
remembering what every request was answered, so a test can check that each acknowledged
(2xx) prediction is in the inference log and that no answer was a 500."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests._waiting import wait_for


@dataclass
class Answer:
    request_id: str
    status: int  # 0: no HTTP answer at all (connection refused, reset, timeout)
    body: Any = None


@dataclass
class Traffic:
    """``threads`` clients posting ``body`` to ``url + path`` until :meth:`stop`."""

    url: str
    path: str
    body: dict[str, Any]
    threads: int = 4
    headers: dict[str, str] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._client, args=(n,), daemon=True)
            for n in range(self.threads)
        ]

    def __enter__(self) -> Traffic:
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
                rid = f"t{n}-{uuid.uuid4().hex[:12]}"
                try:
                    r = http.post(
                        self.path, json=self.body, headers={**self.headers, "x-request-id": rid}
                    )
                    answer = Answer(rid, r.status_code, r.json() if r.content else None)
                except httpx.TransportError:
                    answer = Answer(rid, 0)
                with self._lock:
                    self.answers.append(answer)

    def statuses(self, since: int = 0) -> Counter[int]:
        with self._lock:
            return Counter(a.status for a in self.answers[since:])

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def answered(self) -> set[str]:
        """Request ids answered 2xx."""
        with self._lock:
            return {a.request_id for a in self.answers if 200 <= a.status < 300}

    def wait(self, more: int, *, status: int | None = None, timeout: float = 60.0) -> None:
        """Until ``more`` further requests (answered ``status``, when given) came back."""
        start = self.count()

        def enough() -> bool:
            got = self.statuses(start)
            return (sum(got.values()) if status is None else got[status]) >= more

        wait_for(
            enough, timeout, what=f"{more} more answers" + (f" with {status}" if status else "")
        )
