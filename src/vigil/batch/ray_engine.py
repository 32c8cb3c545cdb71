"""The same scoring job on Ray Data, for files that outgrow one machine: :func:`score_with_ray`.

``read_parquet`` / ``read_csv`` / ``read_json`` → ``map_batches`` with an actor class
that loads the model once per actor from the artifact store, by the digest of the version
the driver resolved (so an alias moved mid-job cannot mix two versions, and actors never
need the registry's database or its credentials) → a datasink that writes each
block with vigil's own writers, so the rows, columns and types are the local engine's.
Each actor checks its batches with the server's validator exactly as the local engine
does.

The output is a directory of part files (one per block, named by Ray), as Ray and Spark
write them; pyarrow, pandas, DuckDB and Ray read it back as one data set. It appears only
when the job succeeded. A batch does not know where it sits in the file, so when an actor
rejects a row, the file is checked once more on the driver (no predicting) to name the
first bad row counted across the whole file.

Ray is an optional dependency: ``pip install 'vigil[ray]'``. Without ``address`` a local
Ray instance is started (with ``num_cpus``) and shut down at the end; with one, the
artifact store (a shared path or S3) and the input and output paths must be reachable
from every node.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from vigil.batch.inputs import Chunk, ChunkValidator, text_feature_names
from vigil.batch.predictions import Scorer
from vigil.batch.readers import csv_convert_options, in_file_order, json_schema, open_reader
from vigil.batch.score import DEFAULT_CHUNK_ROWS, BatchSummary, check_file, formats_of
from vigil.batch.writers import replacing_dir
from vigil.bundle.bundle import load_bundle
from vigil.bundle.signature import Signature
from vigil.errors import (
    DataFileError,
    InvalidParameterError,
    PredictionError,
    ValidationError,
    VigilError,
    require,
)
from vigil.file_formats import RowFormat
from vigil.registry.lineage import version_trust
from vigil.registry.registry import fetch_bundle
from vigil.settings import Settings, load_settings
from vigil.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    import pyarrow as pa

    from vigil.registry.entities import ModelVersion
    from vigil.services import Services

_ARTIFACT_SETTINGS = ("home", "artifact_url", "s3_endpoint_url")
"""The settings an actor needs to fetch the bundle (nothing else crosses to Ray: not the
database URL, which may hold a password, since the driver resolves the version)."""


class BatchScorer:
    """The Ray Data UDF: built once per actor (loads the model), called once per batch."""

    def __init__(
        self,
        version: dict[str, Any],
        settings: dict[str, Any],
        columns: list[str],
        source: str,
        text_columns: frozenset[str],
        proba: bool,
        allow_inf: bool,
    ) -> None:
        # In the actor's process, which has only the settings it was sent: the artifact
        # store and the cache they name (never the database).
        found = load_settings(**settings)
        store = ArtifactStore.from_settings(found)
        # By digest: verified against the version the driver resolved, whatever the alias
        # points to by now.
        path = fetch_bundle(store, version["sha256"], found.bundle_cache_dir)
        bundle = load_bundle(path, trust=version["trust"], sample=False)
        bundle.name, bundle.version = version["name"], version["version"]
        self.check = ChunkValidator(bundle.signature, allow_inf=allow_inf, source=source)
        self.scorer = Scorer(bundle, columns, proba=proba)
        self.text_columns = text_columns
        self.columns = columns

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = in_file_order(batch, self.columns)
        chunk = Chunk(offset=0, table=batch, text_columns=self.text_columns)
        return self.scorer.score(self.check.prepare(chunk))


def score_with_ray(
    uri: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    app: Services,
    output_format: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    proba: bool = False,
    allow_inf: bool = False,
    address: str | None = None,
    num_cpus: int | None = None,
) -> BatchSummary:
    """Score ``input`` with the model ``uri`` names on Ray, into the directory ``output``.

    Same checks, columns and errors as :func:`vigil.batch.score_file`.
    """
    if chunk_rows < 1:
        raise InvalidParameterError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if address is not None and num_cpus is not None:
        raise InvalidParameterError(
            "--num-cpus sizes a local Ray instance; drop it when connecting to --ray-address"
        )
    source, dest = Path(input), Path(output)
    in_fmt, out_fmt = formats_of(source, dest, output_format)
    if not source.is_file():
        raise DataFileError(f"input file {str(source)!r} does not exist")
    if dest.exists():
        raise InvalidParameterError(
            f"the output {str(dest)!r} exists; the Ray engine writes a new directory of "
            "part files there, so name a path that does not exist yet"
        )
    if not dest.parent.is_dir():
        raise DataFileError(f"the output's directory {str(dest.parent)!r} does not exist")

    ray = require("ray", "ray")
    version = app.registry.resolve(uri)
    signature = Signature.model_validate(version.signature)
    if proba and not signature.outputs.has_proba:
        raise InvalidParameterError(
            f"model {version.name} version {version.version} has no predict_proba; "
            "score without --proba"
        )
    columns = _columns(source, in_fmt, signature)
    ChunkValidator(signature, source=source.name).check_columns(columns)

    started = perf_counter()
    owned = not ray.is_initialized()
    if owned:
        ray.init(
            address=address,
            num_cpus=num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    # Ray: only on this engine, once Ray is up
    import ray.data

    options = ray.data.DataContext.get_current().execution_options
    kept_order = options.preserve_order
    options.preserve_order = True  # part files in input order, like the local engine's rows
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = max(1, cpus - 1)
        dataset = _read(ray, source, in_fmt, signature, columns).map_batches(
            BatchScorer,
            fn_constructor_kwargs={
                "version": actor_version(version),
                "settings": actor_settings(app.settings),
                "columns": columns,
                "source": source.name,
                "text_columns": text_feature_names(signature) if in_fmt == "csv" else frozenset(),
                "proba": proba,
                "allow_inf": allow_inf,
            },
            batch_format="pyarrow",
            batch_size=chunk_rows,
            # One CPU stays free for the read and write tasks the actors depend on.
            compute=ray.data.ActorPoolStrategy(min_size=actors, max_size=actors),
            num_cpus=1 if cpus > 1 else 0.5,
        )
        with replacing_dir(dest) as partial:
            # it subclasses Ray's Datasink: importable once Ray is
            from vigil.batch._ray_sink import PartFileSink

            try:
                dataset.write_datasink(PartFileSink(str(partial), out_fmt, dest.name))
            except Exception as exc:
                raise _explain(exc, source, signature, chunk_rows, allow_inf) from None
            rows = _count_rows(partial, out_fmt)
            parts = sum(1 for _ in partial.iterdir())
    finally:
        options.preserve_order = kept_order
        if owned:
            ray.shutdown()
    return BatchSummary(
        rows=rows,
        seconds=perf_counter() - started,
        output=dest,
        format=out_fmt,
        engine="ray",
        chunks=parts,
    )


def actor_version(version: ModelVersion) -> dict[str, Any]:
    """What an actor is told of the version to load: its name, number, digest and the
    trust it was registered with."""
    return {
        "name": version.name,
        "version": version.version,
        "sha256": version.sha256,
        "trust": version_trust(version),
    }


def actor_settings(settings: Settings) -> dict[str, Any]:
    """The settings an actor gets: where the artifacts are, nothing else."""
    values = {k: getattr(settings, k) for k in _ARTIFACT_SETTINGS}
    values["home"] = str(Path(values["home"]).resolve())
    return {k: v for k, v in values.items() if v is not None}


def _columns(source: Path, fmt: RowFormat, signature: Signature) -> list[str]:
    """The input's columns, from its footer or first rows (what the local engine sees)."""
    reader = open_reader(source, fmt, signature, chunk_rows=1)
    try:
        return list(reader.columns)
    finally:
        reader.close()


def _read(ray: Any, source: Path, fmt: RowFormat, signature: Signature, columns: list[str]) -> Any:
    path = str(source.resolve())
    if fmt == "parquet":
        return ray.data.read_parquet(path, file_extensions=None)
    if fmt == "csv":
        return ray.data.read_csv(
            path, convert_options=csv_convert_options(signature), file_extensions=None
        )
    # the JSON reader: only for that format
    import pyarrow.json as pjson

    # lines=False selects Arrow's JSON reader, which reads JSON lines (lines=True means
    # pandas, whose types differ from the local engine's).
    return ray.data.read_json(
        path,
        file_extensions=None,
        parse_options=pjson.ParseOptions(
            explicit_schema=json_schema(signature, columns), unexpected_field_behavior="infer"
        ),
    )


def _count_rows(directory: Path, fmt: RowFormat) -> int:
    import pyarrow.dataset as pads  # only to count the rows written

    kind = "json" if fmt == "jsonl" else fmt
    return int(pads.dataset(str(directory), format=kind).count_rows())


def _cause(exc: BaseException) -> BaseException:
    """The vigil error a Ray task raised, however deep Ray wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, VigilError):
            return current
        nested = getattr(current, "cause", None)
        current = nested if isinstance(nested, BaseException) else current.__cause__
    return exc


def _explain(
    exc: Exception, source: Path, signature: Signature, chunk_rows: int, allow_inf: bool
) -> BaseException:
    """Turn a failed Ray job into the error the local engine would give."""
    cause = _cause(exc)
    if isinstance(cause, ValidationError) or not isinstance(cause, VigilError):
        # Name the first bad row across the whole file (batches only know their own rows).
        check_file(signature, source, chunk_rows=chunk_rows, allow_inf=allow_inf)
    if isinstance(cause, VigilError):
        # Ray may hand back a class made of its own error and ours: rebuild ours alone.
        kind: type[VigilError] = next(
            c for c in type(cause).__mro__ if c.__module__ == VigilError.__module__
        )
        return kind(cause.message, detail=cause.detail)
    text = str(exc).strip()
    last = text.splitlines()[-1] if text else type(exc).__name__
    return PredictionError(f"scoring {source.name} on Ray failed: {last[:300]}")
