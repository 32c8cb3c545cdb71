"""The Ray engine on a real local Ray instance: the same rows, columns and values as the
local engine, and the same error for a bad row (numbered across the whole file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

# Imported, not skipped: the dev extras install Ray, and these tests claim a real instance.
import ray
from sklearn.linear_model import LogisticRegression
from tests.batch._data import FEATURES, read, write

from vigil.app import Vigil
from vigil.batch import score_file
from vigil.errors import ValidationError
from vigil.settings import Settings, load_settings

pytestmark = [
    pytest.mark.slow,
    # Ray Data's own DataContext warns about its own deprecated settings.
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*"),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One real local Ray instance for the module (two CPUs), shut down after."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("ray-home")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, len(FEATURES))), columns=FEATURES)
    target = np.where(frame["f0"] - frame["f2"] > 0, "up", "down")
    settings = load_settings(home=home)
    Vigil(settings).register(LogisticRegression().fit(frame, target), name="trend")
    return settings


def _rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(9)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    return frame.assign(id=np.arange(n))


def _part_files(directory: Path, fmt: str) -> pa.Table:
    kind = "json" if fmt == "jsonl" else fmt
    return pads.dataset(str(directory), format=kind).to_table().sort_by("id")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_ray_writes_what_the_local_engine_writes(
    tmp_path: Path, local_ray: None, registered: Settings, fmt: str
) -> None:
    from vigil.batch.ray_engine import score_with_ray

    source = write(_rows(20_000), tmp_path / f"rows.{fmt}")
    summary = score_with_ray(
        "models:/trend/1",
        source,
        tmp_path / f"ray.{fmt}",
        app=Vigil(registered),
        chunk_rows=4096,
        proba=True,
    )
    assert (summary.rows, summary.engine, summary.format) == (20_000, "ray", fmt)
    assert (tmp_path / f"ray.{fmt}").is_dir() and summary.chunks >= 1

    model = Vigil(registered).load("models:/trend/1")
    score_file(model, source, tmp_path / f"local.{fmt}", proba=True)
    local = read(tmp_path / f"local.{fmt}")
    on_ray = _part_files(tmp_path / f"ray.{fmt}", fmt)
    assert on_ray.column_names == [*FEATURES, "id", "prediction", "proba_down", "proba_up"]
    assert on_ray.equals(local)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial dirs


def test_a_bad_row_on_ray_is_named_across_the_whole_file(
    tmp_path: Path, local_ray: None, registered: Settings
) -> None:
    from vigil.batch.ray_engine import score_with_ray

    rows = _rows(9000).astype({"f1": object})
    rows.loc[7777, "f1"] = "seven"
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    with pytest.raises(ValidationError) as caught:
        score_with_ray(
            "models:/trend/1",
            source,
            tmp_path / "ray.csv",
            app=Vigil(registered),
            chunk_rows=1000,
        )
    assert str(caught.value) == (
        "rows.csv: feature 'f1' in row 7777: expected a number (float64), got the string 'seven'"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_an_actor_loads_the_version_by_digest_and_never_sees_the_database(
    tmp_path: Path, registered: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What crosses to Ray holds no database URL (it may carry a password), and the actor
    loads the model from the artifact store alone: with every database unreachable it
    still scores, the same as the model does locally."""
    from vigil.batch.ray_engine import BatchScorer, actor_settings, actor_version

    secret = "postgresql+psycopg://vigil:s3cret@127.0.0.1:9/registry"
    version = Vigil(registered).registry.resolve("models:/trend/1")
    sent = actor_settings(registered.model_copy(update={"database_url": secret}))
    told = actor_version(version)
    assert "s3cret" not in repr((sent, told))
    assert told["sha256"] == version.sha256 and told["version"] == version.version

    monkeypatch.setenv("VIGIL_DATABASE_URL", secret)  # port 9 (discard): nothing answers
    rows = _rows(50)
    scorer = BatchScorer(told, sent, [*FEATURES, "id"], "rows.parquet", frozenset(), True, False)
    scored = scorer(pa.Table.from_pandas(rows, preserve_index=False))

    model = Vigil(registered).load("models:/trend/1")
    np.testing.assert_array_equal(
        scored.column("prediction").to_numpy(zero_copy_only=False),
        model.model.predict(rows[FEATURES]),
    )
