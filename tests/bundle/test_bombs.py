"""No bomb at registration: hostile model files are refused in one line, quickly, within a
bounded amount of memory, and nothing is registered.

The realistic bombs run ``vigil register`` as a real process under an address-space limit
of 1.5 GB, well above what a normal registration needs and far below what the bombs
would take: without the checks they fail with a MemoryError traceback (or take minutes).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from vigil.app import Vigil
from vigil.bundle.archive import check_zip
from vigil.bundle.bundle import build_bundle
from vigil.bundle.flavors.mlflow import read_mlmodel
from vigil.bundle.safe_yaml import load_untrusted_yaml
from vigil.bundle.trust import TrustPolicy
from vigil.errors import BundleError, ModelTooLargeError
from vigil.settings import load_settings

from ._bombs import (
    MIB,
    SKLEARN_FLAVOR,
    fitted,
    lying_member,
    mlmodel_dir,
    overlapping,
    skops_referencing,
    skops_with_zeros,
    yaml_alias_bomb,
)
from .conftest import files_in

ADDRESS_SPACE = 1_500_000_000


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def register(home: Path, path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "register", "bomb", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "VIGIL_HOME": str(home), **env},
        timeout=300,
        check=False,
        preexec_fn=_limit_memory,
    )
    return done, time.monotonic() - started


def assert_refused(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def nothing_registered(home: Path) -> bool:
    return Vigil(load_settings(home=home)).registry.list_models() == []


# -- YAML --------------------------------------------------------------------------------


def test_a_yaml_alias_bomb_in_mlmodel_is_refused(tmp_path: Path) -> None:
    text = yaml_alias_bomb()
    assert len(text.encode()) < 1200  # about 1 KB that stands for 9**9 strings
    source = mlmodel_dir(tmp_path / "bomb", text)
    done, seconds = register(tmp_path / "home", source)
    assert_refused(done, "MLmodel", "aliases")
    assert seconds < 60
    assert nothing_registered(tmp_path / "home")


def test_yaml_limits() -> None:
    few = "a: &a [1, 2]\nb: *a\nc: *a\n"
    assert load_untrusted_yaml(few, what="MLmodel") == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}
    with pytest.raises(BundleError, match="recursive"):
        load_untrusted_yaml("a: &a [*a]\n", what="MLmodel")
    doubling = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 30)]
    with pytest.raises(BundleError, match="more than 100000 values"):
        load_untrusted_yaml("\n".join(doubling), what="MLmodel")  # 2**30 values, 58 aliases
    with pytest.raises(BundleError, match="too deeply"):
        load_untrusted_yaml("[" * 5000 + "]" * 5000, what="MLmodel")
    with pytest.raises(BundleError, match="python/object"):
        load_untrusted_yaml("!!python/object/apply:os.system ['true']", what="MLmodel")


def test_an_mlmodel_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    source = mlmodel_dir(tmp_path / "big", SKLEARN_FLAVOR + "padding: " + "x" * (5 * MIB) + "\n")
    with pytest.raises(BundleError, match=r"MLmodel is 5\.0 MiB, more than 4\.0 MiB"):
        read_mlmodel(source)


# -- the MLmodel schema ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("signature:\n  inputs: '\"just text\"'\n", "signature.inputs must be a JSON list"),
        ("signature:\n  inputs: '[1, 2]'\n", "signature.inputs[0] must be an object"),
        ("signature:\n  inputs: '{\"a\": 1}'\n", "signature.inputs must be a JSON list"),
        ('signature:\n  inputs: \'[{"name": "a"\'\n', "signature.inputs is not valid JSON"),
        ("signature:\n  inputs: 7\n", "signature.inputs must be a JSON list"),
        ("signature: [1]\n", "signature must be a mapping"),
        (
            'signature:\n  inputs: \'[{"name": [1], "type": "double"}]\'\n',
            "signature.inputs[0].name must be text",
        ),
        (
            'signature:\n  inputs: \'[{"type": "tensor", "tensor-spec": 3}]\'\n',
            "signature.inputs[0].tensor-spec must be an object",
        ),
        ("saved_input_example_info: [1, 2]\n", "saved_input_example_info must be a mapping"),
        ("mlflow_version: [1]\n", "mlflow_version must be text"),
    ],
)
def test_a_malformed_mlmodel_is_a_clear_error(tmp_path: Path, extra: str, message: str) -> None:
    source = mlmodel_dir(tmp_path / "bad", SKLEARN_FLAVOR + extra)
    with pytest.raises(BundleError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_bundle(source, tmp_path / "b")
    assert files_in(tmp_path / "b") == []


@pytest.mark.parametrize(
    ("mlmodel", "message"),
    [
        ("flavors: [sklearn]\n", "flavors must be a mapping"),
        ("flavors:\n  sklearn: skops\n", "flavors.sklearn must be a mapping"),
        ("flavors:\n  sklearn:\n    pickled_model: [a]\n", "flavors.sklearn.pickled_model"),
        ("flavors:\n  onnx:\n    data: 3\n", "flavors.onnx.data must be text"),
    ],
)
def test_malformed_flavors_are_clear_errors(tmp_path: Path, mlmodel: str, message: str) -> None:
    source = mlmodel_dir(tmp_path / "bad", mlmodel)
    with pytest.raises(BundleError, match=message):
        build_bundle(source, tmp_path / "b")


def test_a_bad_signature_is_one_line_from_the_cli(tmp_path: Path) -> None:
    source = mlmodel_dir(tmp_path / "bad", SKLEARN_FLAVOR + "signature:\n  inputs: '[1, 2]'\n")
    done, _ = register(tmp_path / "home", source)
    assert_refused(done, "signature.inputs[0] must be an object")


def test_saved_input_example_info_keeps_its_plain_values(tmp_path: Path) -> None:
    info = "saved_input_example_info:\n  artifact_path: input_example.json\n  type: dataframe\n"
    info += "  nested: {a: 1}\n"
    source = mlmodel_dir(tmp_path / "ok", SKLEARN_FLAVOR + info)
    manifest = build_bundle(source, tmp_path / "b")
    assert manifest.model_info["saved_input_example_info"] == {
        "artifact_path": "input_example.json",
        "type": "dataframe",
    }


# -- zip archives (skops) ----------------------------------------------------------------


@pytest.mark.slow
def test_a_skops_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    bomb = skops_with_zeros(tmp_path / "bomb.skops", 2048)
    assert bomb.stat().st_size < 3 * MIB  # 2 GiB of zeros in about 2 MB
    done, seconds = register(tmp_path / "home", bomb)
    assert_refused(done, "unpacks to 2.0 GiB", "VIGIL_MAX_UNPACKED_MODEL_BYTES")
    assert seconds < 60
    assert nothing_registered(tmp_path / "home")


@pytest.mark.slow
def test_one_array_named_again_and_again_is_refused(tmp_path: Path) -> None:
    bomb = skops_referencing(tmp_path / "refs.skops", 1500)
    assert bomb.stat().st_size < 2 * MIB
    done, seconds = register(tmp_path / "home", bomb)
    assert_refused(done, "1500 times", "1.5 GiB", "VIGIL_MAX_UNPACKED_MODEL_BYTES")
    assert seconds < 60
    assert nothing_registered(tmp_path / "home")


def test_a_member_compressed_beyond_any_real_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ratio.skops"
    sio.dump(fitted(), path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("zeros.npy", bytes(64 * MIB), compress_type=zipfile.ZIP_BZIP2)
    with pytest.raises(ModelTooLargeError, match="compressed more than 1100 to 1"):
        build_bundle(path, tmp_path / "b")
    assert files_in(tmp_path / "b") == []


def test_a_member_larger_than_it_says_is_refused(tmp_path: Path) -> None:
    liar = lying_member(tmp_path / "liar.skops", bytes(8 * MIB), declared=1000)
    with pytest.raises(BundleError, match=r"big\.npy unpacks to more than the 1000 bytes"):
        check_zip(liar, limit=1 << 30, what="liar.skops")


def test_members_sharing_their_data_are_refused(tmp_path: Path) -> None:
    bomb = overlapping(tmp_path / "overlap.skops", 2000)  # 2000 x 1 MiB from 1 KiB of data
    with pytest.raises(ModelTooLargeError, match="share their compressed data"):
        check_zip(bomb, limit=4 << 30, what="overlap.skops")


def test_the_limit_is_a_setting(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    sio.dump(fitted(), path)
    small = Vigil(load_settings(home=tmp_path / "h1", max_unpacked_model_bytes=1000))
    with pytest.raises(ModelTooLargeError, match="VIGIL_MAX_UNPACKED_MODEL_BYTES"):
        small.register(str(path), name="m")
    assert small.registry.list_models() == []
    roomy = Vigil(load_settings(home=tmp_path / "h2", max_unpacked_model_bytes=64 * MIB))
    mv = roomy.register(str(path), name="m")
    assert roomy.load(f"models:/m/{mv.version}").predict(np.zeros((1, 4))).shape == (1,)
    # A server started with a lower limit refuses what it would load.
    reopened = Vigil(load_settings(home=tmp_path / "h2", max_unpacked_model_bytes=1000))
    with pytest.raises(ModelTooLargeError):
        reopened.load(f"models:/m/{mv.version}")
    assert TrustPolicy().unpack_limit == 1 << 30


def test_what_the_limit_counts(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    sio.dump({"w": np.zeros(1000)}, path)
    sizes = check_zip(path, limit=1 << 30, what="model.skops")
    assert sum(sizes.values()) == sum(i.file_size for i in zipfile.ZipFile(path).infolist())
    assert json.loads(zipfile.ZipFile(path).read("schema.json"))["__loader__"] == "DictNode"
