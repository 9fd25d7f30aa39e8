# Tact developer entry points. `make test` is what CI runs (through .ci/run).
#
#   make test PYTEST_ARGS='-k consent -x'    pass arguments through to pytest
#   make PYTHON=python3.12 venv              build the venv with another interpreter

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv system-deps test demo bench lint clean

help:
	@echo "make venv          create $(VENV) and install tact with the dev extra"
	@echo "make system-deps   install/check redis-server and PostgreSQL (for tests, bench)"
	@echo "make test          run the test suite (PYTEST_ARGS='...' to pass options)"
	@echo "make demo          run 'tact demo'"
	@echo "make bench         run the benchmarks"
	@echo "make lint          ruff + mypy + import contracts (lint-imports)"
	@echo "make clean         remove var/, $(VENV) and caches"

venv: $(STAMP)

# Re-installs only when pyproject.toml changes. The stamp is written last, so a
# failed install is retried on the next run.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
		echo "error: '$(PYTHON)' not found; Tact needs Python >= 3.11 (make PYTHON=/path/to/python3.11)" >&2; \
		exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); Tact needs >= 3.11 (make PYTHON=/path/to/python3.11)" >&2; \
		exit 1; }
	@test -x $(VENV)/bin/python || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing tact[dev] into $(VENV)"
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

system-deps:
	@bash scripts/ensure-system-deps.sh

test: venv system-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/tact demo

bench: venv system-deps
	$(VENV)/bin/python -m bench.run

# lint-imports checks the import contracts of pyproject.toml ([tool.importlinter]);
# no cache: the graph takes well under a second, and no cache folder to ignore.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy engine workers
	$(VENV)/bin/lint-imports --no-cache --no-logo

clean:
	rm -rf var $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
