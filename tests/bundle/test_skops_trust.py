"""skops' default trust lists come from a cache, equal to what skops computes, and refuse
the same types; a cache that cannot be believed is ignored.

Each check runs in a fresh interpreter (the lists are built when ``skops.io`` is first
imported) with its own ``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

TREE = "sklearn.tree._tree.Tree"

# What skops trusts by default, as the modules that check types see it, and what it asks
# of two files.
_PROBE = """
import json, sys
from pathlib import Path
if sys.argv[1] == "vigil":
    from vigil.bundle.flavors import _skops_trust
    from vigil.bundle.flavors.sklearn import load_skops
    from vigil.bundle.trust import TrustPolicy
    from vigil.errors import UntrustedModelError
    sio = _skops_trust.skops_io()
else:
    import skops.io as sio
from skops.io import _general, _numpy
lists = {
    f"{m.__name__}.{name}": sorted(getattr(m, name))
    for m in (_general, _numpy) for name in dir(m) if name.endswith("_NAMES")
}
files = [Path(p) for p in sys.argv[2:]]
untrusted = {p.name: sio.get_untrusted_types(file=p) for p in files}
out = {"lists": lists, "untrusted": untrusted}
if sys.argv[1] == "vigil":
    out["used_cache"] = _skops_trust.used_cache
    loaded = {}
    for p in files:
        try:
            loaded[p.name] = type(load_skops(p, TrustPolicy())).__name__
        except UntrustedModelError as exc:
            loaded[p.name] = f"refused: {exc.detail['untrusted_types']}"
    out["loaded"] = loaded
    # The whole of scikit-learn was not imported to decide what to trust.
    out["sklearn_ensemble_imported"] = "sklearn.ensemble" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    import numpy as np

    root = tmp_path_factory.mktemp("skops")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), rng.integers(0, 2, 60)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    sio.dump(pipeline, root / "pipeline.skops")
    sio.dump(tree, root / "tree.skops")
    return [root / "pipeline.skops", root / "tree.skops"]


def _probe(who: str, files: list[Path], cache: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, who, *map(str, files)],
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def plain(files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """skops on its own."""
    return _probe("plain", files, tmp_path_factory.mktemp("unused"))


def _cache_file(cache: Path) -> Path:
    (found,) = (cache / "vigil").glob("skops-trust-*.json")
    return found


@pytest.mark.slow
def test_the_cached_lists_are_skops_own_and_refuse_the_same_types(
    files: list[Path], plain: dict[str, Any], tmp_path: Path
):
    assert plain["untrusted"] == {"pipeline.skops": [], "tree.skops": [TREE]}
    assert len(plain["lists"]["skops.io._general.SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100

    first = _probe("vigil", files, tmp_path)  # computes the lists as skops does, keeps them
    assert first["used_cache"] is False
    cached = _cache_file(tmp_path)
    assert oct(cached.stat().st_mode & 0o777) == "0o600"
    assert oct(cached.parent.stat().st_mode & 0o777) == "0o700"

    second = _probe("vigil", files, tmp_path)
    assert second["used_cache"] is True
    for run in (first, second):
        assert run["lists"] == plain["lists"]
        assert run["untrusted"] == plain["untrusted"]
        assert run["loaded"] == {"pipeline.skops": "Pipeline", "tree.skops": f"refused: {[TREE]}"}
    assert first["sklearn_ensemble_imported"] is True  # skops' all_estimators() walk
    assert second["sklearn_ensemble_imported"] is False


def _doctor(cache: Path, change: Any) -> None:
    path = _cache_file(cache)
    lists = json.loads(path.read_text())
    change(lists)
    path.write_text(json.dumps(lists))


@pytest.mark.slow
@pytest.mark.parametrize(
    "tamper",
    [
        "builtins.eval trusted as an estimator",
        "os.system trusted as a ufunc",
        "a list nobody knows",
        "writable by others",
    ],
)
def test_a_cache_that_cannot_be_believed_is_ignored(
    files: list[Path], plain: dict[str, Any], tmp_path: Path, tamper: str
):
    _probe("vigil", files, tmp_path)
    path = _cache_file(tmp_path)
    if tamper.startswith("builtins.eval"):
        _doctor(tmp_path, lambda d: d["SKLEARN_ESTIMATOR_TYPE_NAMES"].append("builtins.eval"))
    elif tamper.startswith("os.system"):
        _doctor(tmp_path, lambda d: d["NUMPY_UFUNC_TYPE_NAMES"].append("os.system"))
    elif tamper == "a list nobody knows":
        _doctor(tmp_path, lambda d: d.update(EXTRA_TYPE_NAMES=["posix.system"]))
    else:
        path.chmod(0o666)
    run = _probe("vigil", files, tmp_path)
    assert run["used_cache"] is False
    assert run["lists"] == plain["lists"]
    assert run["loaded"]["tree.skops"] == f"refused: {[TREE]}"
