# The two commands of a fresh clone: `make demo` runs the offline demo, `make test` runs the tests.
# Each creates .venv and installs what it needs the first time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check-wheel lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fetcher demo $(ARGS)

# Without ARGS (as CI runs it) the wheel is also built and tried in a clean venv, first, so the
# test runner's summary stays the last line.
test: $(STAMP)
	@if [ -z "$(ARGS)" ]; then ./scripts/check-wheel.sh; fi
	$(BIN)/python -m pytest $(ARGS)

check-wheel: $(STAMP)
	./scripts/check-wheel.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks deploy scripts
	$(BIN)/ruff format --check src tests benchmarks deploy scripts

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy scripts/config_reference.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
