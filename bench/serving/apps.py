"""The servers under test, each started as ``python -m bench.serving.apps KIND PORT``.

* ``hello``: a bare ASGI hello-world on uvicorn + httptools + uvloop (the ceiling), on
  uvicorn's own httptools protocol unless ``--http vigil`` puts it on vigil's one-write
  protocol (:mod:`vigil.serving.protocol`), which every vigil case runs unless
  ``--http uvicorn``;
* ``fastapi-async``: the naive tutorial app (pydantic body, ``model.predict`` per
  request) with an ``async def`` endpoint, as most ML-serving tutorials write it; the
  baseline of the goals (its ratio to ``hello`` matches the issue's reference figures);
* ``fastapi``: the same with a sync ``def`` endpoint, as the FastAPI docs recommend for
  blocking code (a thread-pool hop per request: slower, reported too);
* ``vigil``: vigil's app, native route, metrics and capture on, as ``vigil serve`` runs it
  (``vigil-nometrics``: metrics off; ``vigil-nocapture``: capture off); the inference log
  goes to a temporary directory removed when the server stops; ``vigil-traced``: the same
  with tracing on (``VIGIL_SERVE_TRACING``), its spans exported over OTLP/HTTP to the
  endpoint the runner names in ``OTEL_EXPORTER_OTLP_ENDPOINT``;
* ``slow``: vigil serving a HistGradientBoosting model (100 trees) whose single-row call
  costs well over 0.5 ms; ``--max-batch-size 1`` disables batching, ``--redis-url``
  caches its predictions;
* ``vigil-cache``: ``vigil`` with the prediction cache on for its model, in the Redis at
  ``--redis-url`` (:mod:`vigil.serving.cache`);
* ``vigil-grpc``: ``vigil`` also answering the v2 gRPC protocol on ``--grpc-port``;
* ``grpc-constant``: the gRPC ceiling on this stack: a minimal ``grpc.aio`` servicer of
  ``ModelInfer`` on uvloop that parses the request and answers a constant prediction
  (``ServerReady`` too, for the runner's readiness probe), on ``--grpc-port``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the server is pinned to one core

import numpy as np
from pydantic import BaseModel

N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def training_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    return make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)


def logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = training_data()
    return LogisticRegression(max_iter=1000).fit(X, y)


def boosted() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = training_data()
    return HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0).fit(
        X, y
    )


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


class Features(BaseModel):
    """The tutorial's request body (module level, so FastAPI can resolve the annotation)."""

    features: list[float]


def fastapi_app(*, asynchronous: bool = False) -> Any:
    """The tutorial app; ``asynchronous`` declares the endpoint ``async def``, as many
    tutorials also do (no thread pool hand-off, the model runs on the event loop)."""
    from fastapi import FastAPI

    model = logistic()
    app = FastAPI()

    def predict(body: Features) -> dict[str, int]:
        prediction = model.predict(np.array(body.features).reshape(1, -1))
        return {"prediction": int(prediction[0])}

    async def predict_async(body: Features) -> dict[str, int]:
        return predict(body)

    app.post("/predict")(predict_async if asynchronous else predict)
    return app


class _Adapter:
    flavor = "sklearn"

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    @property
    def has_proba(self) -> bool:
        return True

    def predict(self, X: Any) -> Any:
        return self.estimator.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.estimator.predict_proba(X)


def vigil_app(
    estimator: Any,
    *,
    metrics: bool = True,
    max_batch_size: int = 64,
    capture_home: Path | None = None,
    cache_url: str | None = None,
    tracing: bool = False,
) -> Any:
    """vigil's app over ``estimator``, capturing under ``capture_home`` (``None``: off),
    caching its predictions in the Redis at ``cache_url`` (``None``: off)."""
    from vigil.bundle.flavors.sklearn import SklearnModel
    from vigil.bundle.model import LoadedBundle
    from vigil.bundle.signature import FeatureSpec, OutputSpec, Signature
    from vigil.capture.settings import CaptureSettings
    from vigil.serving.app import create_app
    from vigil.serving.cache import PredictionCache
    from vigil.serving.capture_runtime import CaptureRuntime
    from vigil.serving.config import CachePolicy, ServingSettings
    from vigil.serving.provider import StaticProvider

    signature = Signature(
        inputs=[FeatureSpec(name=n, dtype="float64", nullable=False) for n in FEATURES],
        outputs=OutputSpec(task="classification", dtype="int64", classes=[0, 1], has_proba=True),
    )
    # gc_freeze as `vigil serve` sets it for its workers.
    cache = {"model": CachePolicy(ttl="1h", max_entries=10_000_000)} if cache_url else {}
    # `tracing` only when on: the same app is built from an older checkout's src
    # (VIGIL_BENCH_BEFORE_SRC), whose settings have no such field.
    on: dict[str, Any] = {"tracing": True} if tracing else {}
    if cache:
        on["cache"] = cache
    settings = ServingSettings(metrics=metrics, max_batch_size=max_batch_size, gc_freeze=True, **on)
    # The flavor `vigil serve` loads a scikit-learn model with (its fast path included).
    bundle = LoadedBundle(SklearnModel(estimator), signature, name="model", version=1)
    capture = None
    if capture_home is not None:  # the defaults of `vigil serve` (fsync none)
        capture = CaptureRuntime.from_settings(CaptureSettings(), home=capture_home, store=None)
    return create_app(
        StaticProvider([bundle], settings=settings),
        capture=capture,
        cache=PredictionCache(cache_url) if cache_url else None,
    )


async def grpc_constant(port: int) -> None:
    """Serve the constant ``ModelInfer`` until killed."""
    import grpc

    from vigil.serving.grpc import inference_v2_pb2 as pb
    from vigil.serving.grpc.service import SERVICE

    answer = pb.ModelInferResponse(model_name="model", model_version="1")
    answer.outputs.add(name="predict", datatype="INT64", shape=[1])
    answer.raw_output_contents.append(np.array([1], "<i8").tobytes())

    async def infer(request: Any, context: Any) -> Any:
        return answer

    async def ready(request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    handlers = {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(
            infer,
            request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=pb.ModelInferResponse.SerializeToString,
        ),
        "ServerReady": grpc.unary_unary_rpc_method_handler(
            ready,
            request_deserializer=pb.ServerReadyRequest.FromString,
            response_serializer=pb.ServerReadyResponse.SerializeToString,
        ),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "kind",
        choices=[
            "hello",
            "fastapi",
            "fastapi-async",
            "vigil",
            "vigil-nometrics",
            "vigil-nocapture",
            "vigil-cache",
            "vigil-traced",
            "slow",
            "vigil-grpc",
            "grpc-constant",
        ],
    )
    parser.add_argument("port", type=int)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--grpc-port", type=int, default=None)
    parser.add_argument("--redis-url", default=None, help="the prediction cache's Redis")
    parser.add_argument(
        "--http",
        choices=["vigil", "uvicorn", "granian"],
        default=None,
        help="vigil's one-write protocol (vigil.serving.protocol, what `vigil serve` runs), "
        "uvicorn's own httptools protocol, or granian's Rust HTTP server (embedded: one "
        "worker in this process, bench only); default: uvicorn's for hello, vigil's otherwise",
    )
    args = parser.parse_args()
    # The inference log of the vigil cases, removed when the server stops (the runner ends
    # it with SIGTERM, which uvicorn turns into a clean shutdown).
    with tempfile.TemporaryDirectory(prefix="vigil-bench-capture-") as scratch:
        serve(args, Path(scratch))


def serve(args: argparse.Namespace, capture_home: Path) -> None:
    if args.kind == "grpc-constant":
        import uvloop

        uvloop.run(grpc_constant(args.grpc_port))
        return
    if args.kind == "hello":
        app: Any = hello
    elif args.kind in ("fastapi", "fastapi-async"):
        app = fastapi_app(asynchronous=args.kind == "fastapi-async")
    elif args.kind == "slow":
        app = vigil_app(
            boosted(),
            max_batch_size=args.max_batch_size,
            capture_home=capture_home,
            cache_url=args.redis_url,
        )
    else:
        app = vigil_app(
            logistic(),
            metrics=args.kind != "vigil-nometrics",
            capture_home=None if args.kind == "vigil-nocapture" else capture_home,
            cache_url=args.redis_url if args.kind == "vigil-cache" else None,
            tracing=args.kind == "vigil-traced",
        )
    if args.kind == "vigil-grpc":
        from vigil.serving.grpc.server import GrpcServer

        app.grpc = GrpcServer(f"127.0.0.1:{args.grpc_port}")
    if args.http == "granian":
        serve_granian(app, args.port)
        return
    from vigil.serving.server import run

    http = args.http or ("uvicorn" if args.kind == "hello" else "vigil")
    run(app, "127.0.0.1", args.port, **({"http": "httptools"} if http == "uvicorn" else {}))


def serve_granian(app: Any, port: int) -> None:
    """``app`` behind granian's embedded server (its Rust HTTP/1 and one asyncio worker in
    this process, on uvloop, lifespan on) until SIGTERM or SIGINT."""
    import asyncio
    import signal

    import uvloop
    from granian.constants import Interfaces
    from granian.server.embed import Server as Granian

    async def main() -> None:
        server = Granian(
            app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_access=False
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    uvloop.run(main())


if __name__ == "__main__":
    main()
