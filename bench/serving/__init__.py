"""Serving benchmark: vigil against a bare ASGI ceiling and the naive FastAPI tutorial app.

Run ``python -m bench.serving [--quick]``; wrk must be installed (``apt-get install wrk``).
"""
