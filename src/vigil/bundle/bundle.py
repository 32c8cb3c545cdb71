"""Build and load model bundles: self-describing directories (layout in :mod:`.manifest`).

A bundle is built in a private temporary directory (mode 0700) next to its destination
and moved into place only once complete, so a refusal or failure leaves nothing behind.
What only building needs (signature inference, profiling, reading reference data) is
imported inside :func:`build_bundle`, so a server loading bundles never pays for it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.bundle.flavors import detect_flavor, flavor_for_object, get_flavor
from vigil.bundle.flavors.base import InputTypesUnknownError, path_inside
from vigil.bundle.manifest import (
    MANIFEST_FILE,
    PROFILE_FILE,
    SAMPLE_FILE,
    Manifest,
    ReferenceInfo,
    SourceInfo,
    read_manifest,
)
from vigil.bundle.model import LoadedBundle
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError, ConflictError
from vigil.profile_schema import PREDICTION, PROBA_COLUMN, BaselineProfile

if TYPE_CHECKING:
    import pandas as pd

    from vigil.bundle.flavors.base import Flavor
    from vigil.bundle.model import LoadedModel
    from vigil.bundle.profile import ProgressFn
    from vigil.bundle.signature import Signature


def build_bundle(
    source: Any,
    dest_dir: str | Path,
    *,
    flavor: str | None = None,
    reference: pd.DataFrame | str | Path | None = None,
    target: str | None = None,
    signature: Signature | None = None,
    trust: TrustPolicy = TrustPolicy(),  # noqa: B008 - frozen, so a shared default is safe
    progress: ProgressFn | None = None,
    sample_size: int = 5000,
    seed: int = 0,
    chunk_rows: int = 200_000,
) -> Manifest:
    """Write a bundle for ``source`` into ``dest_dir`` (new, or an empty directory).

    ``source`` is a path (model file or MLflow model directory; the flavor is detected
    unless ``flavor`` says) or an in-memory model (scikit-learn estimator or pipeline,
    XGBoost or LightGBM model, ONNX ``ModelProto``).

    * A path is **loaded under** ``trust`` first, to validate it and to predict on the
      reference: an untrusted file is refused before anything is written. The file is
      copied as it is.
    * An in-memory model is saved in its flavor's safe format (skops for scikit-learn) and
      loaded back trusting exactly the types skops reports at save time: you handed over
      the live object, so you trust what it is made of. Those types are recorded in
      ``Manifest.required_trusted_types`` *as information*: :func:`load_bundle` still
      needs the caller's own trust policy to load the bundle later.

    With ``reference`` (DataFrame, Parquet or CSV path) the signature's types come from the
    data and a baseline profile (with a seeded sample of rows) is stored; ``target`` names
    a label column, excluded from the inputs and profiled as the label.

    >>> import numpy as np, pandas as pd, tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    >>> model = LogisticRegression().fit(X, X["a"] > 0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     manifest = build_bundle(model, f"{tmp}/b", reference=X)
    ...     bundle = load_bundle(f"{tmp}/b")
    ...     same = bool((bundle.predict(X) == model.predict(X)).all())
    >>> manifest.flavor, manifest.signature.feature_names, same
    ('sklearn', ['a', 'b'], True)
    """
    dest = Path(dest_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConflictError(
            f"{str(dest)!r} already exists and is not an empty directory; choose a new one"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".vigil-bundle-", dir=dest.parent))
    try:
        manifest = _build(
            source,
            tmp,
            flavor=flavor,
            reference=reference,
            target=target,
            signature=signature,
            trust=trust,
            progress=progress,
            sample_size=sample_size,
            seed=seed,
            chunk_rows=chunk_rows,
        )
        tmp.chmod(0o755)
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _build(
    source: Any,
    tmp: Path,
    *,
    flavor: str | None,
    reference: pd.DataFrame | str | Path | None,
    target: str | None,
    signature: Signature | None,
    trust: TrustPolicy,
    progress: ProgressFn | None,
    sample_size: int,
    seed: int,
    chunk_rows: int,
) -> Manifest:
    from vigil.bundle.infer import merge_signature, reference_inputs, with_categories
    from vigil.bundle.nullability import with_nullability
    from vigil.bundle.personal_data import SAMPLE_ROWS as PERSONAL_DATA_ROWS
    from vigil.bundle.personal_data import scan_personal_data
    from vigil.bundle.profile import build_profile
    from vigil.bundle.reference import open_reference
    from vigil.bundle.reference_proba import sample_probabilities

    if isinstance(source, str | os.PathLike):
        plugin, model, model_file, info, required, src_info = _from_path(
            Path(source), tmp, flavor, trust
        )
    else:
        plugin, model, model_file, info, required, src_info = _from_object(
            source, tmp, flavor, trust
        )

    ref = open_reference(reference, chunk_rows=chunk_rows) if reference is not None else None
    try:
        model_signature = plugin.infer_signature(model)
    except InputTypesUnknownError as exc:
        if ref is None and signature is None:
            raise  # never guess a type: ask for reference data or a signature
        model_signature = exc.signature  # names and order; the types come from elsewhere
    sig = merge_signature(
        model=model_signature,
        reference=reference_inputs(ref.schema, target=target) if ref is not None else None,
        explicit=signature,
    )
    ref_info = profile_file = sample_file = None
    profile: BaselineProfile | None = None
    if ref is not None:
        profile = build_profile(
            ref,
            sig,
            predict=model.predict,
            target=target,
            sample_size=sample_size,
            seed=seed,
            progress=progress,
        )
        sig = with_categories(sig, profile)
        ref_source = _file_info(ref.path) if ref.path is not None else None
        profile.source_sha256 = ref_source.sha256 if ref_source is not None else None
        ref_info = ReferenceInfo(source=ref_source, n_rows=profile.n_rows, target=target)
    # Probed on the profile's sample rows (or a row from the signature), before the
    # profile is written: only the signature changes.
    sig = with_nullability(sig, model.predict, profile.sample if profile is not None else None)
    if profile is not None:
        profile.sample_probabilities = sample_probabilities(model, sig, profile)
        profile_file, sample_file = _write_profile(profile, tmp)
    # Personal data, by the names of the inputs and of every reference column, and by
    # their values: the profile's seeded sample, or the first rows of columns outside it
    # (bounded either way).
    values: dict[str, list[Any]] = dict(profile.sample) if profile is not None else {}
    names = sig.feature_names + [
        c for c in (ref.columns if ref else []) if c not in sig.feature_names
    ]
    others = [c for c in names if c not in values and ref is not None and c in ref.columns]
    if others and ref is not None:
        first = next(ref.chunks(others), None)
        if first is not None:
            head = first.frame(others).head(PERSONAL_DATA_ROWS)
            values.update({c: head[c].tolist() for c in others})
    personal_data = scan_personal_data(names, values)

    manifest = Manifest(
        flavor=plugin.name,
        model_file=model_file,
        model_info=info,
        signature=sig,
        frameworks=_versions(plugin, model),
        required_trusted_types=list(required.trusted_types),
        requires_pickle=required.trust_pickle,
        source=src_info,
        reference=ref_info,
        profile_file=profile_file,
        sample_file=sample_file,
        personal_data=personal_data,
    )
    (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest


def _from_path(
    src: Path, tmp: Path, flavor: str | None, trust: TrustPolicy
) -> tuple[Flavor, LoadedModel, str, dict[str, Any], TrustPolicy, SourceInfo]:
    if not src.exists():
        raise BundleError(f"model path {str(src)!r} does not exist")
    plugin = detect_flavor(src, flavor)
    model = plugin.load(src, trust=trust)
    required = plugin.required_trust(src, trust=trust)
    if src.is_dir():
        model_file = "model"
        shutil.copytree(src, tmp / model_file, symlinks=True)
    else:
        model_file = "model" + src.suffix.lower()
        shutil.copyfile(src, tmp / model_file)
    return plugin, model, model_file, plugin.model_info(model), required, _file_info(src)


def _from_object(
    obj: Any, tmp: Path, flavor: str | None, trust: TrustPolicy
) -> tuple[Flavor, LoadedModel, str, dict[str, Any], TrustPolicy, SourceInfo]:
    plugin = flavor_for_object(obj, flavor)
    model_file = plugin.save(obj, tmp)
    info = plugin.model_info(obj)
    required = plugin.required_trust(tmp / model_file, trust=trust)
    # The caller handed over the live object: what it is made of is trusted for this load.
    model = plugin.load(
        tmp / model_file, trust=trust.with_types(required.trusted_types), model_info=info
    )
    kind = type(obj)
    return (
        plugin,
        model,
        model_file,
        info,
        required,
        SourceInfo(kind="object", name=f"{kind.__module__}.{kind.__qualname__}"),
    )


def _write_profile(profile: BaselineProfile, tmp: Path) -> tuple[str, str | None]:
    (tmp / PROFILE_FILE).write_text(
        profile.model_dump_json(exclude={"sample", "sample_predictions", "sample_probabilities"}),
        encoding="utf-8",
    )
    if not profile.sample:
        return PROFILE_FILE, None
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = dict(profile.sample)
    if profile.sample_predictions:
        columns[PREDICTION] = profile.sample_predictions
    if profile.sample_probabilities:
        for k, values in enumerate(zip(*profile.sample_probabilities, strict=True)):
            columns[f"{PROBA_COLUMN}{k}"] = list(values)
    pq.write_table(pa.table(columns), tmp / SAMPLE_FILE)
    return PROFILE_FILE, SAMPLE_FILE


def _versions(plugin: Flavor, model: LoadedModel) -> dict[str, str]:
    import numpy

    from vigil.version import VERSION

    versions = {"python": platform.python_version(), "vigil": VERSION}
    versions["numpy"] = numpy.__version__
    versions.update(plugin.versions())
    inner: Flavor | None = getattr(model, "inner_flavor", None)
    if inner is not None:
        versions.update(inner.versions())
    return versions


def _file_info(path: Path) -> SourceInfo:
    if path.is_dir():
        digest = hashlib.sha256()
        size = 0
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            with file.open("rb") as fh:
                file_digest = hashlib.file_digest(fh, "sha256").hexdigest()
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_digest}\n".encode())
            size += file.stat().st_size
        return SourceInfo(
            kind="directory", name=path.name, sha256=digest.hexdigest(), size_bytes=size
        )
    with path.open("rb") as fh:
        sha = hashlib.file_digest(fh, "sha256").hexdigest()
    return SourceInfo(kind="file", name=path.name, sha256=sha, size_bytes=path.stat().st_size)


def load_bundle(
    bundle_dir: str | Path,
    *,
    trust: TrustPolicy = TrustPolicy(),  # noqa: B008 - frozen, so a shared default is safe
    sample: bool = True,
) -> LoadedBundle:
    """Load a bundle: the model (under the caller's ``trust``), signature, profile, manifest.

    Trust comes only from the caller. ``Manifest.required_trusted_types`` and
    ``requires_pickle`` say what the model needs, but are never applied on their own: a
    caller who trusts a bundle (say, one they built themselves) passes them explicitly,
    e.g. ``TrustPolicy(trusted_types=tuple(read_manifest(d).required_trusted_types))``.

    ``sample=False`` leaves the profile's stored reference rows unread (``profile.sample``
    is empty): drift tests need them, serving does not, and reading them needs PyArrow.
    """
    root = Path(bundle_dir)
    manifest = read_manifest(root)
    plugin = get_flavor(manifest.flavor)
    model_path = path_inside(root, manifest.model_file, what=MANIFEST_FILE)
    model = plugin.load(model_path, trust=trust, model_info=manifest.model_info)
    profile = read_profile(root, manifest, sample=sample)
    return LoadedBundle(
        model=model,
        signature=manifest.signature,
        profile=profile,
        manifest=manifest.model_dump(mode="json"),
    )


def read_profile(
    bundle_dir: str | Path, manifest: Manifest | None = None, *, sample: bool = True
) -> BaselineProfile | None:
    """The baseline profile stored in the bundle at ``bundle_dir`` (``None`` without one),
    with its reference sample rows unless ``sample=False``; the model is not loaded."""
    root = Path(bundle_dir)
    manifest = manifest or read_manifest(root)
    if manifest.profile_file is None:
        return None
    path = path_inside(root, manifest.profile_file, what=MANIFEST_FILE)
    try:
        profile = BaselineProfile.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise BundleError(f"{manifest.profile_file} in the bundle is invalid: {exc}") from exc
    if manifest.sample_file is None or not sample:
        return profile
    import pyarrow.parquet as pq

    table = pq.read_table(path_inside(root, manifest.sample_file, what=MANIFEST_FILE))
    names = table.column_names
    rows = {
        c: table.column(c).to_pylist()
        for c in names
        if c != PREDICTION and not c.startswith(PROBA_COLUMN)
    }
    predictions = table.column(PREDICTION).to_pylist() if PREDICTION in names else []
    proba_columns = sorted(
        (c for c in names if c.startswith(PROBA_COLUMN)), key=lambda c: int(c[len(PROBA_COLUMN) :])
    )
    probabilities = [
        list(r) for r in zip(*(table.column(c).to_pylist() for c in proba_columns), strict=True)
    ]
    return profile.model_copy(
        update={
            "sample": rows,
            "sample_predictions": predictions,
            "sample_probabilities": probabilities,
        }
    )
