# The two commands: `make serve` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint typecheck fmt bench bench-autoscale bench-sandbox bench-data-plane bench-watch bench-async \
	system-deps clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "chainyard needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) system-deps

# Debian packages the tests need (PostgreSQL server). Installs only what is missing.
system-deps:
	@bash scripts/system-deps.sh

serve: $(STAMP)
	@bash scripts/system-deps.sh serve
	$(BIN)/chainyard serve $(ARGS)

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest --ignore=tests/fuzz $(PYTEST_ARGS)

# Schemathesis against /openapi.json: every operation, on SQLite then on PostgreSQL; no 5xx, every
# answer as documented (tests/fuzz, docs/reliability.md). Not part of `test`; CI runs both.
.PHONY: fuzz
fuzz: install
	$(BIN)/python -m pytest tests/fuzz $(FUZZ_ARGS)
	CHAINYARD_FUZZ_DATABASE=postgres $(BIN)/python -m pytest tests/fuzz $(FUZZ_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: install
	$(BIN)/python bench/control_plane.py $(BENCH_ARGS)

# Autoscaling and promotion against Ray Serve (the `bench` extra); needs no PostgreSQL.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench-autoscale: $(VENV)/.bench-installed
	$(BIN)/python bench/autoscale.py $(BENCH_ARGS)

# What the local runtime's replica sandbox adds to push-to-ACTIVE and cold start (bubblewrap).
bench-sandbox: install
	$(BIN)/python bench/sandbox_cost.py $(BENCH_ARGS)

# The inference path against a floor and Ray Serve, under wrk (issue 17; docs/bench.md).
bench-data-plane: $(VENV)/.bench-installed
	@bash scripts/system-deps.sh bench
	$(BIN)/python bench/data_plane.py $(BENCH_ARGS)

# Live patching: from a saved file to the first answer by the new code (issue 18).
bench-watch: install
	$(BIN)/python bench/watch.py $(BENCH_ARGS)

# Async inference: enqueue latency and the drain of a backlog against sync throughput (issue 19).
bench-async: install
	@bash scripts/system-deps.sh bench
	$(BIN)/python bench/async.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .chainyard .pytest_cache .mypy_cache .ruff_cache
