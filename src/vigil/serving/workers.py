"""Several worker processes on one port, restarted when they die.

:func:`serve` runs uvicorn's process supervisor over one listening socket shared by every
worker (the kernel hands each new connection to one of them). The supervisor pings every
worker each half second and replaces one that died (``kill -9``, out of memory) or hangs,
while the others keep serving; a worker that cannot even start stops the whole server
instead of restarting forever.

Workers are *spawned*, not forked: each imports vigil afresh, calls the factory named by an
import string (``"package.module:function"``, returning a
:class:`~vigil.serving.provider.ModelProvider`, or a whole
:class:`~vigil.serving.app.ServingApp` such as
:func:`vigil.app.serving_app_from_environment`, which ``vigil serve`` names) and loads its
models after start-up. Nothing
is loaded in the supervisor (it only checks that the provider's module exists, without
importing it or the model stack behind it), so a crash never takes the models with it, no
copy-on-write page is shared by accident, and workers start without waiting on imports
the supervisor would never use. With one worker there is no supervisor: the app runs in
the calling process, which saves a whole Python start on the way to ``/readyz``.

Memory grows with the number of workers: each holds its own copy of every model. Keep
large models in formats whose runtime is native and compact (ONNX, XGBoost, LightGBM:
their boosters live outside the Python heap), give each worker a few threads rather than
adding workers for large models, and read ``vigil_process_resident_memory_bytes`` (one
series per worker ``pid``) to size the machine.

Metrics stay correct across workers: each server start gets a fresh private
``PROMETHEUS_MULTIPROC_DIR`` where every worker writes its values, ``/metrics`` on any
worker answers the sum, and the files of a dead worker's live gauges (in-flight requests,
resident memory) are removed when it is replaced. Counters of a dead worker are kept, so
totals never go backwards. A worker the supervisor retires for any other reason (``SIGHUP``
restarts every worker, ``SIGTTOU`` drops one) loses its live series the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from vigil.errors import ConfigurationError, require

log = logging.getLogger("vigil.serving")

PROVIDER_ENV = "VIGIL_WORKER_PROVIDER"
"""Environment variable naming the factory (of a provider or an app) every worker calls."""

GRPC_ENV = "VIGIL_WORKER_GRPC_ADDRESS"
"""``host:port`` every worker also serves the v2 gRPC protocol on (unset: no gRPC)."""
GRPC_SHARED_ENV = "VIGIL_WORKER_GRPC_SHARED"
"""``1`` when several workers share the gRPC port (each binds it with SO_REUSEPORT)."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GC_FREEZE_ENV = "VIGIL_SERVE_GC_FREEZE"
"""On unless set: workers settle their heap after start-up (see :mod:`vigil._heap`)."""


def _split(spec: str) -> tuple[str, str]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(
            f"provider factory {spec!r} is not an import string; write it as 'module:function'"
        )
    return module_name, attr


def check_factory(spec: str) -> None:
    """Fail early on an import string whose module does not exist, without importing it.

    The supervisor calls this instead of :func:`load_factory`: importing the provider's
    module would pull the model stack into a process that never serves. A missing
    function is caught by the first worker, whose failed start stops the server.

    >>> check_factory("vigil.app:serving_app_from_environment")
    >>> check_factory("vigil.no_such_module:factory")
    Traceback (most recent call last):
    ...
    vigil.errors.ConfigurationError: cannot import provider factory 'vigil.no_such_module:factory' (no module named 'vigil.no_such_module'); check the module path
    """
    module_name, _ = _split(spec)
    try:
        found = importlib.util.find_spec(module_name)
    except ImportError:  # a parent package is missing
        found = None
    if found is None:
        raise ConfigurationError(
            f"cannot import provider factory {spec!r} (no module named {module_name!r}); "
            "check the module path"
        )


def load_factory(spec: str) -> Any:
    """The callable an import string ``"package.module:function"`` names.

    >>> load_factory("vigil.serving.server:free_port").__name__
    'free_port'
    """
    module_name, attr = _split(spec)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot import provider factory {spec!r} ({exc}); check the module path"
        ) from exc
    if not callable(target):
        raise ConfigurationError(f"provider factory {spec!r} is not callable")
    return target


def worker_app() -> Any:
    """The ASGI app of one worker: what the factory named in ``VIGIL_WORKER_PROVIDER``
    returns (a provider's models are served by :func:`~vigil.serving.app.create_app`).

    uvicorn calls this (``factory=True``) inside every worker after it starts, so models
    are loaded in the worker, never in the supervisor. Before any worker thread exists, it
    caps the process's malloc arenas (:func:`vigil._heap.limit_arenas`), and turns the
    collector off until the app settles its heap at ready (:func:`vigil._heap.pause`), if
    the app does (``gc_freeze``, on for ``vigil serve``).
    """
    # Here, not at the top: the supervisor imports this module and must stay light.
    import vigil._heap as _heap

    _heap.pause()
    from vigil.serving.app import ServingApp, create_app

    _heap.limit_arenas()

    spec = os.environ.get(PROVIDER_ENV)
    if not spec:
        raise ConfigurationError(
            f"{PROVIDER_ENV} is not set; start workers with vigil.serving.workers.serve()"
        )
    try:
        made = load_factory(spec)()
        app = made if isinstance(made, ServingApp) else create_app(made)
    except BaseException:
        _heap.resume()
        raise
    if not app.settings.gc_freeze:  # nothing will settle the heap: collect as usual
        _heap.resume()
    address = os.environ.get(GRPC_ENV)
    if address:
        # grpcio is an optional extra, imported only by a worker that serves gRPC.
        from vigil.serving.grpc.server import GrpcServer

        app.grpc = GrpcServer(address, reuse_port=os.environ.get(GRPC_SHARED_ENV) == "1")
    return app


def _supervisor_class() -> Any:
    # Only with several workers; every `vigil` command imports this module (is_loopback).
    from prometheus_client import multiprocess
    from uvicorn.supervisors import Multiprocess

    from vigil.serving.config import ServingSettings
    from vigil.serving.drain import use_draining_workers

    use_draining_workers()

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, plus the metrics bookkeeping for workers that leave.

        uvicorn replaces a dead or hung worker in ``keep_subprocess_alive`` and retires
        workers in its signal handlers (``SIGHUP``, ``SIGTTOU``); after either, the live
        gauges of every pid no longer supervised are removed, so ``/metrics`` never
        shows a worker that is gone. SIGTERM is passed on to every worker as it arrives
        (uvicorn's loop would only do it at its next half-second poll), so all of them
        answer ``/readyz`` 503 at once (:mod:`vigil.serving.drain`).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._stopping: threading.Timer | None = None
            signal.signal(signal.SIGTERM, self._on_sigterm)

        def _on_sigterm(self, sig: int, frame: Any) -> None:
            self.signal_queue.append(sig)  # what uvicorn's handler does: exit at the poll
            for pid in self._pids():  # a worker ignores the SIGTERM uvicorn sends it again
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            if self._stopping is None:
                self._stopping = threading.Timer(
                    ServingSettings().shutdown_delay, self._stop_listening
                )
                self._stopping.start()

        def _stop_listening(self) -> None:
            """Once the workers' shutdown delay is over, take the shared socket out of
            the listening state. Each worker then closes its own descriptor, but this
            process keeps one (it starts replacement workers) until every worker has
            drained: without this, the kernel would go on completing connections that no
            worker accepts, and reset them, request and all, when this process exits.
            Now they are refused, which a load balancer retries elsewhere."""
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)

        def _pids(self) -> set[int]:
            return {p.pid for p in self.processes if p.pid is not None}

        def handle_signals(self) -> None:
            before = self._pids()
            super().handle_signals()
            for pid in sorted(before - self._pids()):
                log.warning("worker %d was retired", pid)
                multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

        def keep_subprocess_alive(self) -> None:
            before = self._pids()
            super().keep_subprocess_alive()
            for pid in sorted(before - self._pids()):
                log.warning("worker %d died; a replacement was started", pid)
                multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    return Supervisor


def check_port(port: int) -> None:
    """Refuse a TCP port outside 0..65535 (0 asks the system for any free port).

    >>> check_port(99999)
    Traceback (most recent call last):
    ...
    vigil.errors.ConfigurationError: --port takes 0 to 65535 (0: any free port), got 99999
    """
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"--port takes 0 to 65535 (0: any free port), got {port}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    import ipaddress  # every `vigil` command imports this module; few ask this

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    """Refuse a gRPC port another process listens on, before any worker starts (workers
    bind it only once their models are loaded, and with several of them SO_REUSEPORT would
    otherwise let them share it with a stranger).

    >>> import socket
    >>> with socket.socket() as held:
    ...     held.bind(("127.0.0.1", 0)); held.listen()
    ...     _check_port_free("127.0.0.1", held.getsockname()[1])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    vigil.errors.ConfigurationError: cannot listen for gRPC on 127.0.0.1:... (...); choose another --grpc-port or stop the process that holds it
    """
    import socket  # only with --grpc-port

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers bind: past connections of a previous run (TIME_WAIT) do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen for gRPC on {host}:{port} ({exc.strerror or exc}); choose "
                "another --grpc-port or stop the process that holds it"
            ) from None


def serve(
    provider: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    on_bound: Callable[[int], None] | None = None,
    grpc_port: int | None = None,
    **options: Any,
) -> None:
    """Serve the models of ``provider`` (an import string) with ``workers`` processes,
    over HTTP on ``port`` and, with ``grpc_port``, the v2 gRPC protocol on that port of the
    same ``host`` (:mod:`vigil.serving.grpc`).

    Blocks until SIGINT/SIGTERM, then drains every worker (:mod:`vigil.serving.drain`:
    ``/readyz`` turns 503 at once, requests held are answered within the drain timeout,
    capture is flushed, exit status 0). ``on_bound`` is called with the
    port actually listened on (the one the system picked for ``port=0``) once the socket
    is bound, before any worker starts. ``options`` go to ``uvicorn.Config`` (e.g.
    ``log_level``); the drain's bounds are the app's ``drain_timeout`` and
    ``shutdown_delay`` settings.
    """
    check_port(port)
    if workers < 1:
        raise ConfigurationError(f"--workers must be at least 1 (got {workers})")
    if grpc_port is not None:
        if grpc_port == port:
            raise ConfigurationError(
                f"--grpc-port must differ from --port (both are {port}); gRPC listens on "
                "a port of its own"
            )
        require("grpc", "grpc")
        _check_port_free(host, grpc_port)
    if not is_loopback(host):
        # The app cannot see the address it is bound to: decide "auto" here, for every worker.
        auth = os.environ.get("VIGIL_SERVE_AUTH", "auto").lower()
        if auth == "off":
            raise ConfigurationError(
                f"authentication cannot be off on the non-loopback address {host}; "
                "unset VIGIL_SERVE_AUTH or bind to 127.0.0.1"
            )
        os.environ["VIGIL_SERVE_AUTH"] = "on"
    require("uvicorn", "serve")
    import vigil._heap as _heap  # not at the top: every `vigil` command imports this module
    from vigil.serving.server import config  # uvicorn: only when serving

    # Fail here, once, rather than in every worker. One worker runs in this process, which
    # imports the provider anyway; a supervisor must not (see the module docstring).
    if workers == 1:
        # This process is the worker: its start-up runs with the collector off from here
        # (worker_app, vigil._heap.pause), importing the provider included.
        _heap.pause()
        try:
            load_factory(provider)
        except BaseException:
            _heap.resume()
            raise
    else:
        _heap.resume()  # a supervisor only supervises: it collects as usual (vigil.cli)
        check_factory(provider)
    # One process keeps its metrics in memory; several share a fresh private directory
    # (set before any worker imports prometheus-client, which picks its storage at import).
    metrics_dir = tempfile.mkdtemp(prefix="vigil-metrics-") if workers > 1 else None
    names = (PROVIDER_ENV, MULTIPROC_ENV, GC_FREEZE_ENV, GRPC_ENV, GRPC_SHARED_ENV)
    previous = {k: os.environ.get(k) for k in names}
    os.environ[PROVIDER_ENV] = provider
    os.environ.pop(GRPC_ENV, None)
    os.environ.pop(GRPC_SHARED_ENV, None)
    if grpc_port is not None:
        os.environ[GRPC_ENV] = f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"
        os.environ[GRPC_SHARED_ENV] = "1" if workers > 1 else "0"
    # A process that only serves: short collector pauses (vigil._heap), unless told not to.
    os.environ.setdefault(GC_FREEZE_ENV, "true")
    if metrics_dir is not None:
        os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        cfg = config("vigil.serving.workers:worker_app", host, port, factory=True, **options)
        # Bound here, whatever the number of workers, so the port the system picked for
        # port 0 is known before anything is announced.
        sock = cfg.bind_socket()
        try:
            if on_bound is not None:
                on_bound(int(sock.getsockname()[1]))
            if workers == 1:
                from vigil.serving.drain import DrainingServer  # uvicorn: only when serving

                DrainingServer(cfg).run(sockets=[sock])
                return
            cfg.workers = workers
            _supervisor_class()(cfg, sockets=[sock]).run()
        finally:
            sock.close()
    finally:
        _heap.resume()  # the server stopped, or never got to ready: collect as usual
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: list[str] | None = None) -> None:
    """``python -m vigil.serving.workers PROVIDER [--workers N] [--host H] [--port P]``."""
    import argparse  # only as a script

    parser = argparse.ArgumentParser(prog="python -m vigil.serving.workers")
    parser.add_argument("provider", help="provider factory, as 'module:function'")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--grpc-port", type=int, default=None)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    serve(
        args.provider,
        host=args.host,
        port=args.port,
        workers=args.workers,
        grpc_port=args.grpc_port,
        log_level=args.log_level,
    )


if __name__ == "__main__":  # pragma: no cover
    main()
