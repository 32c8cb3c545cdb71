"""A ``vigil serve`` worker whose event loop reports every slow callback.

``python tests/serving/watched_server.py PORT THRESHOLD`` builds the app exactly as a
``vigil serve`` worker does (the registry-backed provider from ``VIGIL_*`` variables,
through :func:`~vigil.app.serving_app_from_environment`) and serves it with uvicorn on uvloop, as
``vigil serve`` does, but with the loop in asyncio debug mode: every callback (one step of
a request's coroutine, say) that runs longer than THRESHOLD seconds is logged by the loop
as ``Executing <...> took N seconds`` on stderr, which
``tests/serving/test_bounded_cost.py`` reads once the server has stopped (SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import sys


def main(port: int, threshold: float) -> None:
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
    loop.set_debug(True)
    loop.slow_callback_duration = threshold
    asyncio.set_event_loop(loop)
    server = uvicorn.Server(config(app, port=port))
    try:
        loop.run_until_complete(server.serve())
    finally:
        loop.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
