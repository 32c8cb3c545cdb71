# The vigil image: `vigil serve` on 0.0.0.0:8000, so API keys are always checked.
#
#   docker build -t vigil:0.1.0 .                                  # serve, postgres, redis, s3
#   docker build --build-arg EXTRAS=serve,onnx,xgboost -t vigil:onnx .
#
# Everything it writes goes to VIGIL_HOME (/var/lib/vigil, a volume) or /tmp: the root
# filesystem can be read-only. docs/deploy.md ("Container image") says how to run it.
# tests/deploy/test_image.py reads this file: keep the directives it checks.

# Any Debian-based image with python3 (3.11, as constraints.txt was resolved for) and venv;
# with no registry at hand, one made locally from a Debian root filesystem (docs/deploy.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The pip extras installed: serve is needed; add onnx, xgboost, lightgbm, mlflow, grpc, ...
ARG EXTRAS=serve,postgres,redis,s3
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/vigil
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
# The versions CI tested (constraints.txt); bytecode compiled now, since the root filesystem
# may be read-only at run time (and PYTHONDONTWRITEBYTECODE is set there).
RUN /opt/vigil/bin/pip install -c constraints.txt ".[${EXTRAS}]" \
 && /opt/vigil/bin/python -m compileall -q /opt/vigil/lib

FROM ${PYTHON_IMAGE}
# tini as PID 1: it forwards SIGTERM to vigil and reaps orphaned processes (a Python PID 1
# would leave zombies of the workers' children).
RUN command -v tini >/dev/null \
 || (apt-get update && apt-get install -y --no-install-recommends tini \
     && rm -rf /var/lib/apt/lists/*)
# A fixed numeric user, so Kubernetes' runAsNonRoot can check it; any other uid works too
# (getpass falls back to "unknown" as the audit actor: set VIGIL_ACTOR).
ARG UID=10001
RUN groupadd --gid "${UID}" vigil \
 && useradd --uid "${UID}" --gid vigil --home-dir /var/lib/vigil --no-create-home \
      --shell /usr/sbin/nologin vigil \
 && install -d -o vigil -g vigil -m 0750 /var/lib/vigil
COPY --from=build /opt/vigil /opt/vigil
ENV PATH=/opt/vigil/bin:$PATH \
    VIGIL_HOME=/var/lib/vigil \
    HOME=/var/lib/vigil \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/vigil"]
WORKDIR /var/lib/vigil
USER ${UID}:${UID}
EXPOSE 8000
# /readyz answers 200 once every model is loaded and warmed (503 while loading or draining).
# urlopen raises on any other status or no answer: exit 1. No curl in a slim image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "vigil", "serve", "--host", "0.0.0.0"]
CMD ["--port", "8000", "--log-format", "json"]
