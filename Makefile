# PeaceLand's two commands (see README.md):
#   make up     set up everything and run the platform locally
#   make test   run the whole test suite: ruff, mypy, import-linter, pytest on real servers
# While working, `make test-fast` runs the tests that need no server, in seconds.
# Everything else here is what those two are made of.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's bundle, built from the npm registry through its package-lock.json.
DASHBOARD := api/peaceland/api/dashboard/static/app.js
DASHBOARD_SOURCES := $(wildcard api/dashboard/src/*) api/dashboard/package.json \
	api/dashboard/package-lock.json api/dashboard/build.mjs api/dashboard/tsconfig.json

.PHONY: up test test-fast down status check lint typecheck architecture pytest install lock clean image

up: $(STAMP) $(DASHBOARD)
	$(BIN)/peaceland demo

test: check pytest

# The tests that need no server (about 15 s): the first check of any change.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not servers and not spark" -p no:cacheprovider

check: lint typecheck architecture

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy tenants analytics operator services api cli stack node loadgen image tests

architecture: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) $(DASHBOARD)
	$(BIN)/pytest

# The platform's OCI image (dist/peaceland.oci.tar), built as root with Debian's mmdebstrap
# and umoci, no Docker engine; prints its digest.
image: $(STAMP) $(DASHBOARD)
	$(BIN)/peaceland image

down: $(STAMP)
	$(BIN)/peaceland stack down

status: $(STAMP)
	$(BIN)/peaceland stack status

install: $(STAMP) $(DASHBOARD)

# npm's cache (~/.npm) keeps the packages: a second build fetches nothing.
$(DASHBOARD): $(DASHBOARD_SOURCES)
	@command -v npm >/dev/null || { echo "Node.js 20 and npm are needed to build the dashboard"; exit 1; }
	cd api/dashboard && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	cd api/dashboard && npm run --silent typecheck && npm run --silent build

# The virtual environment is rebuilt whenever the lock file or pyproject changes.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Regenerates requirements.lock from pyproject.toml (every transitive dependency pinned), and
# requirements-runtime.lock, its runtime part (what the image installs).
lock:
	$(PYTHON) -m pip install --quiet uv==0.13.8
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--no-header --output-file requirements.lock
	# The image's: the runtime only, at the versions the development lock pins.
	$(PYTHON) -m uv pip compile pyproject.toml -c requirements.lock --python-version 3.11 \
		--no-header --annotation-style line --output-file requirements-runtime.lock

clean:
	rm -rf dist $(VENV) .mypy_cache .ruff_cache .pytest_cache api/dashboard/node_modules api/peaceland/api/dashboard/static
