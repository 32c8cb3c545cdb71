"""A ``vigil serve`` worker whose event loop reports every long stall, in CPU time.

``python tests/serving/watched_server.py PORT BUSY HELD`` builds the app exactly as a
``vigil serve`` worker does (the registry-backed provider from ``VIGIL_*`` variables,
through :func:`~vigil.app.serving_app_from_environment`) and serves it with uvicorn on uvloop, as
``vigil serve`` does, with a watchdog thread (:func:`watch`) that logs on stderr

* ``loop busy: N CPU s in one turn`` when the loop's thread spent more than BUSY seconds of
  CPU between two turns of the loop (work done on the loop: one long callback, say), and
* ``loop held: N CPU s of other threads without a turn`` when the process's other threads
  spent more than HELD seconds of CPU while the loop could not turn (a worker thread holding
  the interpreter lock in one long C call, as orjson parsing a body does),

which ``tests/serving/test_bounded_cost.py`` reads once the server has stopped (SIGTERM).
CPU time, not wall-clock time: a loaded machine that makes the loop wait for a core makes
no one work more, so it cannot trigger either line (asyncio's debug mode, used before,
measures callbacks in wall-clock seconds).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time

log = logging.getLogger("watched")

TURN = 0.01
"""Seconds between two turns the loop is asked to report, and between two looks."""


def watch(loop: asyncio.AbstractEventLoop, busy: float, held: float) -> None:
    """Start the watchdog of the module's docstring on ``loop`` (call from its thread)."""
    clock = time.pthread_getcpuclockid(threading.get_ident())
    turns = 0

    def turn() -> None:
        nonlocal turns
        turns += 1
        loop.call_later(TURN, turn)

    def run() -> None:
        seen, at_loop, at_all = turns, time.clock_gettime(clock), time.process_time()
        while True:
            time.sleep(TURN)
            now_loop, now_all = time.clock_gettime(clock), time.process_time()
            if turns == seen:
                continue  # no turn yet: what is spent meanwhile is counted when it comes
            spent = now_loop - at_loop
            others = now_all - at_all - spent
            if spent > busy:
                log.warning("loop busy: %.3f CPU s in one turn", spent)
            if others > held:
                log.warning("loop held: %.3f CPU s of other threads without a turn", others)
            seen, at_loop, at_all = turns, now_loop, now_all

    loop.call_soon(turn)
    threading.Thread(target=run, name="loop-watchdog", daemon=True).start()


def main(port: int, busy: float, held: float) -> None:
    import uvicorn
    import uvloop

    from vigil.app import serving_app_from_environment
    from vigil.serving.server import config

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="%(created).3f %(name)s %(levelname)s %(message)s",
    )
    app = serving_app_from_environment()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    watch(loop, busy, held)
    server = uvicorn.Server(config(app, port=port))
    try:
        loop.run_until_complete(server.serve())
    finally:
        loop.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
