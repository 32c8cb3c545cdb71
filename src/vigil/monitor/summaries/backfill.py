"""Backfill: build the stored summaries of every compacted part of a model in a date range.

The monitor builds a part's summaries the first time a window reads it
(:func:`~vigil.monitor.summaries.store.part_summaries`); a backfill builds them ahead of
time, for months of history at once, so the first monitoring cycle over them only merges.
:func:`backfill` is the single-process engine; :func:`vigil.batch.backfill.backfill` adds
one on Ray that runs :func:`build_part`, this same function, once per part as a Ray task.

Each part is one unit of work, and its outcome depends on the part alone:

* **skipped** — its summaries are stored already (the ``.keys`` index, written after the
  summaries it indexes, is there): a backfill run again does nothing twice.
* **built** — summarised in one pass over its record batches and written beside it,
  atomically, under a name made of the part's own (so it is counted once, whoever built
  it, however often).
* **unanchored** — it holds rows of a version that is not registered: summarised but not
  stored (:func:`~vigil.monitor.summaries.store.part_summaries`), as the monitor does.

A part whose summaries were written but whose index was not (a build killed between the
two writes) gets its index from the stored summaries, without summarising again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

from vigil.capture.crypt import read_log_bytes
from vigil.errors import DataFileError, InvalidParameterError, NotFoundError, VigilError
from vigil.monitor.baseline import load_baseline
from vigil.monitor.summaries.build import AnchorsFor
from vigil.monitor.summaries.store import _keys_bytes, part_summaries, parts, summary_key
from vigil.monitor.summaries.window import DEFAULT_GRAIN_S, Anchors, anchors_for, loads

if TYPE_CHECKING:
    from vigil.services import Services
    from vigil.storage.artifacts import ArtifactStore

Outcome = Literal["built", "skipped", "unanchored"]
Progress = Callable[[int, int], None]
"""Called with (parts done, parts in all)."""


@dataclass(frozen=True)
class PartResult:
    """What a backfill did with one compacted part."""

    part: str
    """The part's key in the store (``capture/model=…/date=…/part-….parquet``)."""
    outcome: Outcome
    rows: int = 0
    """Answered rows summarised (0 when skipped)."""

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "outcome": self.outcome, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartResult:
        return cls(str(data["part"]), data["outcome"], int(data["rows"]))


@dataclass
class BackfillResult:
    """What a backfill did, part by part."""

    model: str
    engine: str
    since: datetime | None
    until: datetime | None
    parts: list[PartResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for p in self.parts if p.outcome == outcome)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engine": self.engine,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "parts": len(self.parts),
            "built": self.count("built"),
            "skipped": self.count("skipped"),
            "unanchored": self.count("unanchored"),
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "results": [p.to_dict() for p in self.parts],
        }


def keys_key(part: str, grain_s: int = DEFAULT_GRAIN_S) -> str:
    """The store key of a part's index of buckets (written after its summaries).

    >>> keys_key("capture/model=churn/date=2026-01-05/part-abc.parquet")
    'summaries/model=churn/date=2026-01-05/part-abc.g3600.keys'
    """
    return summary_key(part, grain_s)[: -len(".summary")] + ".keys"


def is_built(store: ArtifactStore, part: str, grain_s: int = DEFAULT_GRAIN_S) -> bool:
    """Whether ``part``'s summaries are stored (its index is there)."""
    return store.exists(keys_key(part, grain_s))


def build_part(
    store: ArtifactStore, part: str, anchors: AnchorsFor, *, grain_s: int = DEFAULT_GRAIN_S
) -> PartResult:
    """Build and store one part's summaries unless they are stored already."""
    if is_built(store, part, grain_s):
        return PartResult(part, "skipped")
    try:
        # Summaries stored, index not (killed between the two writes): finish the index.
        stored = loads(read_log_bytes(store, summary_key(part, grain_s)))
    except (NotFoundError, ValueError):  # none yet, or an older format: built below
        pass
    else:
        store.write_bytes(keys_key(part, grain_s), _keys_bytes(stored))
        return PartResult(part, "built", sum(s.rows for s in stored))
    try:
        built = part_summaries(store, part, anchors, grain_s=grain_s)
    except VigilError:
        raise
    except (OSError, ValueError) as exc:  # Arrow's errors are ValueErrors and OSErrors
        raise DataFileError(
            f"cannot build the summaries of {part}: {exc}; fix or remove that part "
            "and run the backfill again (the parts built so far are kept)",
            detail={"part": part},
        ) from exc
    outcome: Outcome = "built" if is_built(store, part, grain_s) else "unanchored"
    return PartResult(part, outcome, sum(s.rows for s in built))


def version_anchors(app: Services, model: str) -> Callable[[str, int], Anchors | None]:
    """``anchors(model, version)`` from the registry, each version's computed once, on
    first use (None for a version that is not registered, or of another model)."""
    found: dict[int, Anchors | None] = {}

    def anchors(name: str, version: int) -> Anchors | None:
        if name != model:
            return None
        if version not in found:
            try:
                found[version] = anchors_for(load_baseline(app, model, version))
            except NotFoundError:
                found[version] = None
        return found[version]

    return anchors


def plan(app: Services, model: str, since: datetime | None, until: datetime | None) -> list[str]:
    """The compacted parts of ``model`` whose day meets ``[since, until]`` (checked first:
    an unknown model or an empty range fails before any work)."""
    if since is not None and until is not None and since >= until:
        raise InvalidParameterError(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    app.registry.get_model(model)
    return parts(app.artifacts, model, since, until)


def run_parts(
    todo: Iterable[PartResult], total: int, progress: Progress | None
) -> list[PartResult]:
    """Collect part results as they come, telling ``progress``."""
    out: list[PartResult] = []
    if progress is not None:
        progress(0, total)
    for result in todo:
        out.append(result)
        if progress is not None:
            progress(len(out), total)
    return out


def backfill(
    app: Services,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    grain_s: int = DEFAULT_GRAIN_S,
    progress: Progress | None = None,
) -> BackfillResult:
    """Build the summaries of every compacted part of ``model`` whose day meets
    ``[since, until]``, in this process, one part after the other; parts already built
    are skipped. Returns what happened to each part."""
    started = perf_counter()
    keys = plan(app, model, since, until)
    anchors = version_anchors(app, model)
    store = app.artifacts
    results = run_parts(
        (build_part(store, part, anchors, grain_s=grain_s) for part in keys), len(keys), progress
    )
    return BackfillResult(model, "local", since, until, results, perf_counter() - started)
