# The two commands of a fresh clone: `make demo` runs the offline demo, `make test` runs the tests.
# Each creates .venv and installs what it needs the first time (the demo: no dev tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Test processes: one per core by default; TEST_WORKERS=0 runs the suite in this process alone.
TEST_WORKERS ?= auto

.PHONY: demo test check-wheel lint typecheck audit bench clean

# The demo needs the package and its runtime dependencies only; tests and linters need the dev
# extra on top. Each stamp is redone when pyproject.toml changes.
RUNTIME := $(VENV)/.installed-runtime

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): pyproject.toml $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(RUNTIME)
	$(BIN)/fetcher demo $(ARGS)

# Without ARGS (as CI runs it) the wheel is also built and tried in a clean venv, first, so the
# test runner's summary stays the last line.
test: $(STAMP)
	@if [ -z "$(ARGS)" ]; then ./scripts/check-wheel.sh; fi
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(ARGS)

check-wheel: $(STAMP)
	./scripts/check-wheel.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks deploy scripts
	$(BIN)/ruff format --check src tests benchmarks deploy scripts

# Known vulnerabilities in requirements.lock (needs pip-audit, or ARGS="--advisories DIR" offline);
# skipped with a message where the advisory service cannot be reached. Not part of `make test`.
audit: $(STAMP)
	$(BIN)/python scripts/audit.py $(ARGS)

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy scripts/config_reference.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
