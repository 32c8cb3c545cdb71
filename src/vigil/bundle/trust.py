"""Who trusts what: the caller's trust policy for loading model files.

Some model formats can run code when loaded (pickle, joblib, cloudpickle) and skops files
may name types outside skops' safe default list. vigil loads such files only when the
*caller* says so. A trust list never comes from the artifact itself: a file that could
declare its own types trusted would make the check pointless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from vigil.errors import UntrustedModelError

DEFAULT_MAX_UNPACKED_BYTES = 1 << 30
"""1 GiB: the default of ``VIGIL_MAX_UNPACKED_MODEL_BYTES``."""


@dataclass(frozen=True)
class TrustPolicy:
    """What the caller allows a model file to do when it is loaded.

    Parameters
    ----------
    trust_pickle
        Load pickle / joblib / cloudpickle files (they can run arbitrary code).
    trusted_types
        Fully qualified type names a skops file may instantiate beyond skops' defaults
        (e.g. ``sklearn.tree._tree.Tree``).
    max_unpacked_bytes
        Most bytes the file may unpack to (see :mod:`vigil.bundle.archive`); ``None``:
        :data:`DEFAULT_MAX_UNPACKED_BYTES`. The composition root fills it from
        ``VIGIL_MAX_UNPACKED_MODEL_BYTES``.

    >>> policy = TrustPolicy(trusted_types=("sklearn.tree._tree.Tree",))
    >>> policy.allowed_types(["sklearn.tree._tree.Tree"], what="model.skops")
    ['sklearn.tree._tree.Tree']
    >>> TrustPolicy().allowed_types(["numpy.int64"], what="model.skops")
    Traceback (most recent call last):
    ...
    vigil.errors.UntrustedModelError: model.skops holds types nobody trusted: numpy.int64. If you trust this file, load it again with --trust-type numpy.int64 (Python: TrustPolicy(trusted_types=('numpy.int64',)))
    """

    trust_pickle: bool = False
    trusted_types: tuple[str, ...] = ()
    max_unpacked_bytes: int | None = None

    @property
    def unpack_limit(self) -> int:
        """The limit on unpacked bytes that applies."""
        return self.max_unpacked_bytes or DEFAULT_MAX_UNPACKED_BYTES

    def within(self, limit: int) -> TrustPolicy:
        """This policy with ``limit`` unpacked bytes, unless it names its own."""
        return (
            self if self.max_unpacked_bytes is not None else replace(self, max_unpacked_bytes=limit)
        )

    def with_types(self, types: Iterable[str]) -> TrustPolicy:
        """A copy that also trusts ``types``."""
        merged = dict.fromkeys([*self.trusted_types, *types])
        return replace(self, trusted_types=tuple(merged))

    def allowed_types(self, required: Iterable[str], *, what: str) -> list[str]:
        """The ``required`` types, once every one of them is trusted.

        Raises :class:`~vigil.errors.UntrustedModelError` listing exactly the types that
        are not trusted, and how to trust them.
        """
        required = list(dict.fromkeys(required))
        missing = [t for t in required if t not in self.trusted_types]
        if missing:
            flags = " ".join(f"--trust-type {t}" for t in missing)
            raise UntrustedModelError(
                f"{what} holds types nobody trusted: {', '.join(missing)}. If you trust this "
                f"file, load it again with {flags} (Python: TrustPolicy(trusted_types="
                f"{tuple(missing)!r}))",
                detail={"untrusted_types": missing},
            )
        return required

    def check_pickle(self, *, what: str) -> None:
        """Refuse a pickle-based file unless the caller trusts pickle."""
        if not self.trust_pickle:
            raise UntrustedModelError(
                f"{what} is a pickle-based file, which can run arbitrary code when loaded. "
                "Prefer a safe format (skops, ONNX, XGBoost JSON/UBJ, LightGBM text); if you "
                "trust this file, load it again with --trust-pickle "
                "(Python: TrustPolicy(trust_pickle=True))",
                detail={"requires": "trust_pickle"},
            )
