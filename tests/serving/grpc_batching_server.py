"""A worker serving one cheap model over REST and v2 gRPC, as the serving benchmark's
``vigil-grpc`` case serves it: a LogisticRegression on a NumPy matrix (its calls run on the
event loop), metrics on, no inference log.

``python tests/serving/grpc_batching_server.py PORT GRPC_PORT`` serves until SIGTERM;
:func:`model` fits the same model for the test to compare with
(``tests/serving/test_grpc_batching.py``).
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

FEATURES = [f"f{i}" for i in range(8)]


def model() -> LogisticRegression:
    X, y = make_classification(n_samples=300, n_features=len(FEATURES), random_state=7)
    return LogisticRegression(max_iter=500).fit(X, y)


class _Adapter:
    flavor = "sklearn"
    has_proba = True

    def __init__(self, estimator: LogisticRegression) -> None:
        self.estimator = estimator

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X))


def main(port: int, grpc_port: int) -> None:
    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
    from vigil.serving.app import create_app
    from vigil.serving.config import ServingSettings
    from vigil.serving.grpc.server import GrpcServer
    from vigil.serving.provider import StaticProvider
    from vigil.serving.server import run

    signature = Signature(
        inputs=[FeatureSpec(name=n, dtype="float64", nullable=False) for n in FEATURES],
        outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1], has_proba=True),
    )
    bundle = LoadedBundle(_Adapter(model()), signature, name="clf", version=1)
    app = create_app(StaticProvider([bundle], settings=ServingSettings()))
    app.grpc = GrpcServer(f"127.0.0.1:{grpc_port}")
    run(app, "127.0.0.1", port)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
