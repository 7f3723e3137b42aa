# Everything a newcomer needs: `make run` (demo into .data/), `make test`, `make dev` (UI + daemon, `dg dev`),
# `make bench`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.data/dagster
# `dg` checks that it runs in the project's environment.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

.PHONY: install run dev test lint bench clean

install: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The instance config lives in deploy/local/, not beside workspace.yaml: `dg dev` warns about a dagster.yaml in
# the working folder that DAGSTER_HOME does not use.
$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/local/dagster.yaml $@

run: install
	$(BIN)/python -m synth_platform demo

# DG_DEV_ARGS passes options to `dg dev` (e.g. `-p 3001`). The wrapper turns a SIGTERM (which make passes on to
# it alone) into Ctrl-C for the whole process group, so every process stops at once.
dev: install
	$(BIN)/python -m synth_platform dev $(DG_DEV_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/dg check defs

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf .data
