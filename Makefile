# Tally: `make run` starts the local stack, `make test` runs every test.
# Both create .venv and install the pinned dependencies when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
REGION ?= us-east-1

.PHONY: run test lint infra-check bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tally dev up

# Two pytest workers (one per core); a module's tests stay on one worker (module-scoped local stacks).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

infra-check: $(STAMP)
	$(BIN)/python -m infra.check

# Each bench records its figures in build/bench/ (emptied first); bench/summary.py prints them as one table.
bench: $(STAMP)
	rm -rf build/bench
	$(BIN)/python bench/dashboard_latency.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/records.py
	$(BIN)/python bench/billing.py
	$(BIN)/python bench/localstack.py
	$(BIN)/python bench/capacity.py
	$(BIN)/python bench/contention.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/summary.py

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
