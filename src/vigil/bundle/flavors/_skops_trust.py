"""``skops.io`` without importing all of scikit-learn each time a process starts.

Importing ``skops.io`` builds its default trust lists (``skops.io._trusted_types``): every
estimator class scikit-learn has (``sklearn.utils.all_estimators`` imports every public
scikit-learn module), every ufunc of NumPy and ``scipy.special``, NumPy's dtypes and bit
generators. That costs more than importing scikit-learn itself, in every command that
loads or saves a skops model, although the lists only change when those packages do.

:func:`skops_io` computes the lists the first time with skops' own code, keeps them in a
cache file keyed by the installed skops, scikit-learn, SciPy and NumPy (versions, paths and
file times), and afterwards hands skops exactly those lists instead of recomputing them.
Nothing about trust changes: skops checks every type against the same names it would have
computed. The cache is used only when it can be believed:

* its directory and file belong to this user and nobody else may write them;
* every list holds names under the package skops draws that list from (``sklearn.``,
  ``numpy``, ``scipy.``, and the exact builtins skops trusts), so even a doctored file
  cannot make skops trust ``builtins.eval`` or ``os.system``;
* the skops version in use imports no name the cache lacks.

Otherwise skops computes its lists as it always does (slow, and still exact).

Where: ``$XDG_CACHE_HOME/vigil`` (default ``~/.cache/vigil``); a cache that cannot be
written (a read-only home) only means the slow path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import stat
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import Any

MODULE = "skops.io._trusted_types"
_PACKAGES = ("skops", "sklearn", "scipy", "numpy")
# Which package each list's names must come from, by the list's name.
_PREFIXES = {
    "SKLEARN_": ("sklearn.",),
    "NUMPY_": ("numpy.",),
    "SCIPY_": ("scipy.",),
}
# The builtins skops trusts (primitive and container types); nothing else under builtins.
_BUILTINS = frozenset(
    f"builtins.{name}" for name in ("int", "float", "str", "bool", "list", "set", "map", "tuple")
)

used_cache = False
"""Whether this process's ``skops.io`` got its trust lists from the cache (for tests)."""
_lock = threading.Lock()  # a server loads models on threads: one import at a time


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "vigil"


def skops_io() -> types.ModuleType:
    """``skops.io``, imported with its default trust lists from the cache when possible."""
    with _lock:
        return _import()


def _import() -> types.ModuleType:
    global used_cache
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    try:
        path = _cache_path()
    except RuntimeError:  # no home directory to keep a cache in (Path.home())
        path = None
    lists = _read(path) if path is not None else None
    if lists is not None:
        module = types.ModuleType(MODULE)
        module.__dict__.update(lists)
        sys.modules[MODULE] = module
        try:
            imported = importlib.import_module("skops.io")
            used_cache = True
            return imported
        except ImportError:  # this skops wants a name the cache lacks: let it compute them
            for name in [m for m in sys.modules if m == "skops.io" or m.startswith("skops.io.")]:
                del sys.modules[name]
    imported = importlib.import_module("skops.io")
    if path is not None:
        _write(path, sys.modules[MODULE])
    return imported


def _cache_path() -> Path | None:
    """The cache file for the installed packages, named by a digest of what identifies
    them; ``None`` when one of them cannot be found."""
    identity: list[str] = [sys.version]
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            return None
        origin = Path(spec.origin)
        files = [origin]
        if name == "skops":  # the module computing the lists, and the one checking them
            files += [origin.parent / "io" / "_trusted_types.py", origin.parent / "_version.py"]
        for file in files:
            try:
                info = file.stat()
            except OSError:
                return None
            identity.append(f"{file}:{info.st_size}:{info.st_mtime_ns}")
        identity.append(_version(origin.parent))
    digest = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:24]
    return cache_dir() / f"skops-trust-{digest}.json"


def _version(package_dir: Path) -> str:
    """The ``*.dist-info`` directory next to a package names its version (cheaper than
    ``importlib.metadata``, which reads every distribution on the path)."""
    site = package_dir.parent
    name = package_dir.name.replace("sklearn", "scikit_learn")
    found = sorted(p.name for p in site.glob(f"{name}-*.dist-info"))
    return ",".join(found) or package_dir.name


def _private(path: Path) -> bool:
    """Owned by this user, and writable by nobody else."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _valid(lists: Any) -> bool:
    if not isinstance(lists, dict) or not lists:
        return False
    for name, values in lists.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return False
        prefixes = next((p for k, p in _PREFIXES.items() if name.startswith(k)), None)
        if prefixes is not None:
            if not all(v.startswith(prefixes) for v in values):
                return False
        elif name.startswith(("PRIMITIVE_", "CONTAINER_")):
            if not set(values) <= _BUILTINS:
                return False
        else:  # a list we cannot vouch for
            return False
    return True


def _read(path: Path) -> dict[str, list[str]] | None:
    try:
        if not (_private(path.parent) and _private(path)):
            return None
        lists = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return lists if _valid(lists) else None


def _write(path: Path, module: types.ModuleType) -> None:
    """Keep the lists skops just computed (every public list of names)."""
    lists = {
        name: list(value)
        for name, value in vars(module).items()
        if name.isupper()
        and not name.startswith("_")
        and isinstance(value, list)
        and all(isinstance(v, str) for v in value)
    }
    if not _valid(lists):
        return  # a skops whose lists this module does not know how to check: no cache
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".skops-trust-")  # mode 0600
        with os.fdopen(fd, "w") as out:
            json.dump(lists, out)
        os.replace(tmp, path)
    except OSError:
        return  # a read-only home: the next process computes them again
