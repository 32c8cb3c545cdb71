"""Backfills of window summaries, in this process or on a Ray cluster: :func:`backfill`.

``engine="local"`` is :func:`vigil.monitor.summaries.backfill.backfill`: one part after
the other. ``engine="ray"`` lists the same parts on the driver and runs
:func:`~vigil.monitor.summaries.backfill.build_part` (the same function) once per part as
a Ray task, a few tasks per CPU in flight, each reading its part from the artifact store
and writing the summaries beside it exactly as the local engine does. So what is stored
is the local engine's: every count, bin, category count and moment equal, and the KLL
quantile sketches (randomised by DataSketches, run to run, on either engine) within their
stated rank bound.

What crosses to Ray: the part's key, the artifact store's settings
(:func:`vigil.batch.ray_engine.actor_settings`: its URL and S3 endpoint, never the
database's URL), and each registered version's anchors, computed on the driver from the
registry. S3 credentials are not sent: each node reads them as any AWS client does (its
environment, ``~/.aws``, an instance role); a local Ray instance started here inherits
this process's environment.

For teams that live on Spark, :class:`PartBuilder` is the same per-part build as a
function for ``DataFrame.mapInPandas`` (frames of part keys in, frames of results out);
``docs/scale.md`` has the recipe.

Ray is optional: ``pip install 'vigil[ray,monitor]'``. Without ``address`` a local Ray
instance is started (``num_cpus``) and shut down at the end; with one (``ray://head:10001``
or ``auto``), every node must have vigil installed, at this version, and reach the store.
"""

from __future__ import annotations

import logging
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

from vigil.batch.ray_engine import _cause, actor_settings
from vigil.errors import InvalidParameterError, NotFoundError, VigilError, require
from vigil.monitor.baseline import load_baseline
from vigil.monitor.summaries.backfill import (
    BackfillResult,
    PartResult,
    Progress,
    build_part,
    plan,
    run_parts,
)
from vigil.monitor.summaries.backfill import backfill as local_backfill
from vigil.monitor.summaries.window import DEFAULT_GRAIN_S, Anchors, anchors_for
from vigil.settings import load_settings
from vigil.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pandas as pd

    from vigil.services import Services

Engine = Literal["local", "ray"]
IN_FLIGHT_PER_CPU = 2
"""Tasks submitted per CPU of the cluster at a time: enough to keep each busy while
results come back, few enough that the driver never holds a task per part of a year."""


def backfill(
    app: Services,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    engine: Engine = "local",
    address: str | None = None,
    num_cpus: int | None = None,
    grain_s: int = DEFAULT_GRAIN_S,
    progress: Progress | None = None,
) -> BackfillResult:
    """Build the stored summaries of every compacted part of ``model`` whose day meets
    ``[since, until]``, skipping those built already; ``progress(done, total)`` is told
    of each part done.

    >>> from vigil.app import Vigil
    >>> from vigil.settings import load_settings
    >>> import tempfile
    >>> app = Vigil(load_settings(home=tempfile.mkdtemp()))
    >>> backfill(app, "churn", engine="spark")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidParameterError: unknown engine 'spark': use local or ray
    """
    if engine not in ("local", "ray"):
        raise InvalidParameterError(f"unknown engine {engine!r}: use local or ray")
    if engine == "local":
        if address is not None or num_cpus is not None:
            raise InvalidParameterError("--ray-address and --num-cpus need --engine ray")
        return local_backfill(
            app, model, since=since, until=until, grain_s=grain_s, progress=progress
        )
    if address is not None and num_cpus is not None:
        raise InvalidParameterError(
            "--num-cpus sizes a local Ray instance; drop it when connecting to --ray-address"
        )
    if app.artifacts.log_codec is not None:
        # Ray workers get the store's settings only; the log's keys never leave this host.
        raise InvalidParameterError(
            "the inference log is encrypted (VIGIL_CAPTURE_ENCRYPTION_KEY_FILE) and Ray "
            "workers do not get its keys; backfill with --engine local"
        )
    return _backfill_on_ray(
        app,
        model,
        since=since,
        until=until,
        address=address,
        num_cpus=num_cpus,
        grain_s=grain_s,
        progress=progress,
    )


def registered_anchors(app: Services, model: str) -> dict[int, Anchors]:
    """The anchors of every registered version of ``model``, by version number."""
    out: dict[int, Anchors] = {}
    for mv in app.registry.list_versions(model):
        try:
            out[mv.version] = anchors_for(load_baseline(app, model, mv.version))
        except NotFoundError:  # deleted meanwhile: its parts stay unanchored
            continue
    return out


def build_task(
    settings: dict[str, Any], part: str, anchors: dict[int, Anchors], model: str, grain_s: int
) -> dict[str, Any]:
    """One part's build, in a Ray worker: the store from the settings it was sent (no
    database), :func:`~vigil.monitor.summaries.backfill.build_part` as the local engine
    runs it. Returns the :class:`PartResult` as plain values."""
    store = ArtifactStore.from_settings(load_settings(**settings))

    def anchors_of(name: str, version: int) -> Anchors | None:
        return anchors.get(version) if name == model else None

    return build_part(store, part, anchors_of, grain_s=grain_s).to_dict()


class PartBuilder:
    """:func:`build_task` over frames of part keys, for Spark's ``mapInPandas``: each
    frame's ``part`` column in, a frame of :data:`SPARK_SCHEMA` out (one row per part).

    Holds what :func:`build_task` is sent on Ray (the store's settings, the registered
    versions' anchors), so Spark ships it to its executors the same way; build one with
    :func:`part_builder`.
    """

    def __init__(
        self, settings: dict[str, Any], anchors: dict[int, Anchors], model: str, grain_s: int
    ) -> None:
        self.settings = settings
        self.anchors = anchors
        self.model = model
        self.grain_s = grain_s

    def __call__(self, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd  # pandas: the frames mapInPandas hands over

        for frame in frames:
            done = [
                build_task(self.settings, str(part), self.anchors, self.model, self.grain_s)
                for part in frame["part"]
            ]
            yield pd.DataFrame(done, columns=["part", "outcome", "rows"]).astype({"rows": "int64"})


SPARK_SCHEMA = "part string, outcome string, rows long"
"""The schema of :class:`PartBuilder`'s frames, as ``mapInPandas`` wants it."""


def part_builder(app: Services, model: str, *, grain_s: int = DEFAULT_GRAIN_S) -> PartBuilder:
    """The ``mapInPandas`` function that builds ``model``'s parts as :func:`backfill`
    does (anchors from the registry, read here, on the driver)."""
    return PartBuilder(actor_settings(app.settings), registered_anchors(app, model), model, grain_s)


def _backfill_on_ray(
    app: Services,
    model: str,
    *,
    since: datetime | None,
    until: datetime | None,
    address: str | None,
    num_cpus: int | None,
    grain_s: int,
    progress: Progress | None,
) -> BackfillResult:
    ray = require("ray", "ray")
    started = perf_counter()
    keys = plan(app, model, since, until)
    anchors = registered_anchors(app, model)
    settings = actor_settings(app.settings)
    owned = not ray.is_initialized()
    if owned:
        ray.init(
            address=address,
            num_cpus=num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    try:
        results = run_parts(
            _on_ray(ray, keys, settings, anchors, model, grain_s), len(keys), progress
        )
    finally:
        if owned:
            ray.shutdown()
    order = {part: i for i, part in enumerate(keys)}
    results.sort(key=lambda r: order[r.part])
    return BackfillResult(model, "ray", since, until, results, perf_counter() - started)


def _on_ray(
    ray: Any,
    keys: list[str],
    settings: dict[str, Any],
    anchors: dict[int, Anchors],
    model: str,
    grain_s: int,
) -> Iterator[PartResult]:
    """The parts' results as their tasks finish (not in order)."""
    task = ray.remote(num_cpus=1, max_retries=2)(build_task)
    # Sent once to the object store, not once per task.
    shared_settings, shared_anchors = ray.put(settings), ray.put(anchors)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    waiting = list(reversed(keys))
    running: dict[Any, str] = {}
    try:
        while waiting or running:
            while waiting and len(running) < IN_FLIGHT_PER_CPU * cpus:
                part = waiting.pop()
                ref = task.remote(shared_settings, part, shared_anchors, model, grain_s)
                running[ref] = part
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                part = running.pop(ref)
                try:
                    yield PartResult.from_dict(ray.get(ref))
                except Exception as exc:
                    raise _explain(exc, part) from None
    finally:
        for ref in running:  # a failure stops the rest; what was built stays built
            ray.cancel(ref)


def _explain(exc: Exception, part: str) -> VigilError:
    """A failed task as the vigil error it raised (rebuilt without Ray's wrapper), or one
    line naming the part."""
    cause = _cause(exc)
    if isinstance(cause, VigilError):
        kind: type[VigilError] = next(
            c for c in type(cause).__mro__ if c.__module__ == VigilError.__module__
        )
        return kind(cause.message, detail=cause.detail)
    text = str(exc).strip()
    last = text.splitlines()[-1] if text else type(exc).__name__
    return VigilError(
        f"building the summaries of {part} on Ray failed: {last[:300]}", detail={"part": part}
    )
