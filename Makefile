# The one command surface: people, the README and CI all use these targets.
# Each target installs what it needs: a virtual environment with the pip extras and,
# when run as root on Debian, the system packages the tests start for real.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# The exact versions CI tested; `make lock` refreshes them, `make test-latest` tries the newest.
LOCK   := constraints.txt
# Debian packages the tests start for real, and the benchmark's load generators (wrk; h2load
# of nghttp2-client, which a gRPC batching test also runs). prometheus-alertmanager: amtool
# checks the example Alertmanager configuration, and vigil's alerts are sent to a real one. tini and haproxy: the image's PID 1 and the
# Compose stack's load balancer, whose configuration tests/deploy checks; podman, runc and
# debootstrap build and run the image (tests/deploy/test_image.py); haproxy also balances
# the replica tests (tests/cluster).
TEST_PACKAGES  := postgresql redis-server prometheus prometheus-alertmanager chromium chromium-driver tini haproxy podman runc debootstrap nghttp2-client
BENCH_PACKAGES := $(TEST_PACKAGES) wrk

.PHONY: demo test nannyml-venv lint bench format install bytecode system-deps clean lock test-latest

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

# `make demo` installs only what the demo runs (the `demo` extra: vigil and `vigil serve`),
# with the same pins; a venv that `make test` installed already has it all.
$(DEMO_STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e '.[demo]'
	touch $(DEMO_STAMP)

install: $(STAMP)

# Byte-compile vigil's source, as installing a wheel does. An editable install never gets
# its bytecode written when PYTHONDONTWRITEBYTECODE is set, and then every start compiles
# every vigil module again (a third of a second of `vigil serve`'s cold start).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src >/dev/null

# Installs the Debian packages named in PACKAGES that are missing. Only attempted as root;
# otherwise the tests that need them fail saying which package to install.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi

# Bytecode as `bytecode` writes it, without that target's dependency on the full install.
demo: $(DEMO_STAMP)
	@$(BIN)/python -m compileall -q src >/dev/null
	$(BIN)/vigil demo

test: $(STAMP) bytecode nannyml-venv
	$(MAKE) --no-print-directory system-deps PACKAGES="$(TEST_PACKAGES)"
	$(BIN)/python -m pytest tests src/vigil

# NannyML, which tests/monitor compares vigil's CBPE with, in its own virtualenv (.venvs/nannyml:
# its pins must not enter vigil's; it reads vigil's packages and installs ~10 small ones, in
# seconds); built once, rebuilt when tests/monitor/_nannyml.py's pins change.
nannyml-venv: $(STAMP)
	$(BIN)/python -c "from tests.monitor._nannyml import nannyml_python; print(nannyml_python())"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP) bytecode
	$(MAKE) --no-print-directory system-deps PACKAGES="$(BENCH_PACKAGES)"
	$(BIN)/python -m bench $(ARGS)

# Resolve the newest releases that pyproject.toml allows in a scratch environment and
# record them as the lock; review the diff, run `make test`, commit.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .venv-lock

# The whole suite on the newest releases (not the lock), to see upstream changes early.
test-latest:
	test -x .venv-latest/bin/python || $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	$(MAKE) --no-print-directory system-deps PACKAGES="$(TEST_PACKAGES)"
	.venv-latest/bin/python -m pytest tests src/vigil

clean:
	rm -rf $(VENV) .venv-latest .venv-lock .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
