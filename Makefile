# One command per task. Each sets up .venv first (once, and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit bench bench-peers bench-cpu faults clean

# The PostgreSQL server the tests create their databases on (trust auth on this machine).
export JOBDESK_TEST_POSTGRES_URL ?= postgresql://root@127.0.0.1:5432/postgres

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the demo — two users, limits, a worker with live progress, on a fresh SQLite file
##      (make run PORT=8080 serves on another port; 0 picks a free one; DEMO_ARGS: more options)
run: $(STAMP)
	$(BIN)/python -m jobdesk.demo $(if $(PORT),--port $(PORT)) $(DEMO_ARGS)

# The TypeScript client's npm packages (pinned by its package-lock.json), for its test.
CLIENT_MODULES := clients/typescript/node_modules/.package-lock.json
$(CLIENT_MODULES): clients/typescript/package-lock.json
	npm ci --prefix clients/typescript --no-audit --no-fund

## test: lint, types, then every test (unit, integration on each store, acceptance)
test: lint typecheck $(CLIENT_MODULES)
	$(BIN)/python -m pytest --cov=jobdesk --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)

## lint: ruff format check, ruff lint, and the layers (import-linter contracts in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## typecheck: mypy --strict over src, tests, bench and scripts
typecheck: $(STAMP)
	$(BIN)/mypy

## unit: the fast tests only (no I/O)
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

## bench: the SQLite benchmark (see bench/README.md for the others)
bench: $(STAMP)
	$(BIN)/python bench/bench_sqlite.py

## bench-peers: jobdesk beside PgQueuer, Procrastinate, Celery and RQ (~20 min; REPS, N, LIBS: bench/peers/README.md)
bench-peers:
	bench/peers/run_peers.sh

## bench-cpu: CPU per job of each process (producer, workers, server, PostgreSQL) beside PgQueuer (~5 min)
bench-cpu:
	REPS=$${REPS:-3} bench/peers/run_peers.sh cpu

## faults: the long fault-injection run on each store (10,000+ jobs, tens of faults; ~13 min),
##         then the long fault tests (webhooks under killed senders, outages, a database crash; ~3 min a store)
faults: $(STAMP)
	$(BIN)/python bench/faults.py --store sqlite --jobs 12500 --duration 330
	$(BIN)/python bench/faults.py --store postgres --jobs 12500 --duration 330
	$(BIN)/python -m pytest -m long tests/faults -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage jobdesk-demo.db*
	rm -rf clients/typescript/node_modules clients/typescript/dist clients/typescript/src/schema.d.ts

# The coverage floor only goes up. Processes the tests start (jobdesk serve, jobdesk worker,
# the demo) are measured too (coverage's subprocess patch); a clean run gave 92.8%.
COVERAGE_FLOOR := 90
