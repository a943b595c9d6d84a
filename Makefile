# One command each: `make up` runs the platform on a simulated district; `make test` runs the suite.
# `make up` installs only what the platform needs to run (and starts its own PostgreSQL when
# none is reachable); `make test` adds the test tools and the test-only database build.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV     := $(VENV)/.installed-dev

.PHONY: up test test-fast lint services browser install install-dev

$(RUNTIME): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(DEV): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	@if [ -f .ci/pglite/package-lock.json ] && command -v npm >/dev/null; then \
		npm ci --silent --no-audit --no-fund --prefix .ci/pglite; fi
	touch $(DEV)

install: $(RUNTIME)

install-dev: $(DEV)

services:
	bash .ci/services

browser:
	bash .ci/browser

up: install
	$(BIN)/eldercare up

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install-dev services browser lint
	$(BIN)/python -m pytest

test-fast: install-dev services
	$(BIN)/python -m pytest -m "not slow"
