# One command each: `make up` runs the platform on a simulated district; `make test` runs the suite.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: up test test-fast lint services browser install

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@if [ -f .ci/pglite/package-lock.json ] && command -v npm >/dev/null; then \
		npm ci --silent --no-audit --no-fund --prefix .ci/pglite; fi
	touch $(STAMP)

install: $(STAMP)

services:
	bash .ci/services

browser:
	bash .ci/browser

up: install
	$(BIN)/eldercare up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install services browser lint
	$(BIN)/python -m pytest

test-fast: install services
	$(BIN)/python -m pytest -m "not slow"
