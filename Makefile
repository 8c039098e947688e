# The two commands that matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Never phone home, and give Prefect's temporary local server time to start on a small machine.
# The telemetry-off pair is written once for Python (allocation/__init__.py, TELEMETRY_OFF); make
# is not Python, so it repeats it here (tests/integration/test_telemetry_off.py checks the copy).
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

# Prefect server commands honour PREFECT_API_URL when set.
PREFECT_PORT ?= 4200
PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
# The work pool is named once, in prefect.yaml (read when a recipe needs it, after `install`).
WORK_POOL ?= $(shell $(BIN)/python -c "import yaml; print(yaml.safe_load(open('prefect.yaml'))['deployments'][0]['work_pool']['name'])")

.PHONY: install run test lint typecheck unit fuzz bench bench-test bench-views analyst docs server deploy alerts-off worker night lock clean

install: $(STAMP)

# The locked packages go in with uv, pinned here (installed by pip into the virtual environment
# first): pip took ~55 s for them on a clean clone and uv ~11 s, the same versions (checked by
# `pip freeze` against requirements.lock), and `make test` on a clean clone has 10 minutes.
# Compiled to bytecode at install (pip does that by itself, uv only when asked), and so is the
# package: where PYTHONDONTWRITEBYTECODE is set (this machine and CI set it), Python never
# writes a .pyc, so every process (each test process, flow run, `allocation` command, Prefect
# server and worker) would compile every module it imports from source, again: importing
# Prefect, polars, DuckDB and pandera took 3.7 CPU-s without bytecode against 1.6 with it.
UV_VERSION := 0.13.9
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m compileall -q allocation
	touch $(STAMP)

# The sample night gets its own warehouse and outbox: never the deployment's data/warehouse.duckdb
# or data/outbox, so `make run` in a worker's checkout cannot commit the sample as a real night.
SAMPLE_RUN := data/sample-run
# The sample's files are complete whatever their age (a fresh checkout dates them now).
run: install
	ALLOCATION_INBOX_SETTLE_SECONDS=0 $(BIN)/allocation run --inbox data/sample --warehouse $(SAMPLE_RUN)/warehouse.duckdb --outbox $(SAMPLE_RUN)/outbox

lint: install
	$(BIN)/ruff check allocation tests benchmarks deploy
	$(BIN)/ruff format --check allocation tests benchmarks deploy
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Four processes, a test module to each at a time (module-scoped Prefect servers stay whole; the
# three modules of the operators' shared stack go together: tests/conftest.py's scheduler). The
# two long e2e units (the deployment's stack, the shared stack) mostly wait on servers and
# workers, so two more processes keep both cores busy meanwhile; they are handed out first
# (--no-loadscope-reorder keeps tests/conftest.py's order), and the processes share one
# temporary Prefect API (tests/shared_api.py). The budget is 10 minutes on a clean clone, install
# included: docs/design.md ("Tests") has the measurements.
test: install lint typecheck
	$(BIN)/pytest -n 4 --dist loadfile --no-loadscope-reorder

unit: install
	$(BIN)/pytest tests/unit

# The property-based and stateful tests (marker `fuzz`) with many more examples than `make test`.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -m fuzz --timeout 3600

# The benchmark harness's own tests (benchmarks/tests/: inbox generator, memory sampler, step
# timings, report and plot). Not part of `make test`: they guard the measuring tools, not a
# promise of the pipeline; .ci/run runs them after `make test` (a few seconds).
bench-test: install
	$(BIN)/pytest benchmarks/tests

# Options pass through, e.g. `make bench BENCH_ARGS="--10m --30m --runners local"`
# (docs/benchmarks.md lists them; `python -m benchmarks.run --help`).
BENCH_ARGS ?=
bench: install
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# The analysts' views and documented queries on a synthetic 100-night warehouse alone (docs/benchmarks.md);
# `make bench` runs it too, with what a night pays for the views.
bench-views: install
	$(BIN)/python -m benchmarks.analyst_views --nights 100 --lines 30000

# Basic auth: a server started with PREFECT_SERVER_API_AUTH_STRING=user:password asks every
# client for it; the worker, the CLI and `make deploy` send PREFECT_API_AUTH_STRING (taken from
# the server's setting when only that one is set, as on a one-machine set-up).
ifdef PREFECT_SERVER_API_AUTH_STRING
export PREFECT_API_AUTH_STRING ?= $(PREFECT_SERVER_API_AUTH_STRING)
endif
SERVER_HOST ?= 127.0.0.1

# docs/data-dictionary.md from the sample warehouse's own descriptions (a test keeps it current).
docs: run
	$(BIN)/python -m allocation.io.data_dictionary $(SAMPLE_RUN)/warehouse.duckdb docs/data-dictionary.md

# The pinned DuckDB 1.x command-line client (dev dependency duckdb-cli), read-only on the
# published warehouse: `make analyst`, or `make analyst WAREHOUSE=path/to/warehouse.duckdb`.
# Only WAREHOUSE= on make's command line chooses the file (a WAREHOUSE variable in the shell, a
# Snowflake warehouse's name say, does not); it reaches the shell through the environment, so any
# file name works.
analyst: export ANALYST_WAREHOUSE := $(if $(filter command line,$(origin WAREHOUSE)),$(WAREHOUSE),data/warehouse.duckdb)
analyst: install
	@if [ ! -e "$$ANALYST_WAREHOUSE" ]; then \
	  echo "make analyst: no warehouse at $$ANALYST_WAREHOUSE yet: run a night first (make run, or allocation run --warehouse FILE), or choose one with make analyst WAREHOUSE=path/to/warehouse.duckdb" >&2; \
	  exit 2; \
	elif [ ! -f "$$ANALYST_WAREHOUSE" ]; then \
	  echo "make analyst: $$ANALYST_WAREHOUSE is not a file: give the warehouse's .duckdb file with WAREHOUSE=..." >&2; \
	  exit 2; \
	fi; \
	exec $(BIN)/duckdb -readonly "$$ANALYST_WAREHOUSE"

# The Prefect server and UI on http://$(SERVER_HOST):$(PREFECT_PORT), telemetry off; loopback
# only unless basic auth is on (docs/prefect.md: running the server for a team). PREFECT_UI_URL
# (the address people open) is what alert messages link to. Concurrency leases are kept on disk
# (under PREFECT_HOME), so a server restart does not lose the slot of a night that is running:
# with the default in-memory storage, the night's next lease renewal after a restart got
# "410 Gone" and the night was terminated.
server: install
	@if [ -n "$$PREFECT_SERVER_API_AUTH_STRING" ]; then \
	  echo "basic auth on (PREFECT_SERVER_API_AUTH_STRING)"; \
	elif [ "$(SERVER_HOST)" != 127.0.0.1 ] && [ "$(SERVER_HOST)" != localhost ]; then \
	  echo "refusing SERVER_HOST=$(SERVER_HOST) without PREFECT_SERVER_API_AUTH_STRING=user:password: anyone on the network could start nights" >&2; \
	  exit 2; \
	else echo "no basic auth (PREFECT_SERVER_API_AUTH_STRING unset): loopback only"; fi
	PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect.server.concurrency.lease_storage.filesystem \
	PREFECT_UI_URL="$${PREFECT_UI_URL:-http://$(SERVER_HOST):$(PREFECT_PORT)}" \
	  exec $(BIN)/prefect server start --host $(SERVER_HOST) --port $(PREFECT_PORT) --analytics-off

# Creates the work pool if missing, then creates or updates every deployment in prefect.yaml,
# then the alert webhook block (from ALLOCATION_ALERT_WEBHOOK_URL; unset: the block an earlier
# deploy saved is kept, so alerts stay as they were) and every automations/*.yaml; then it
# schedules the nights and names them `night-DATE` (Prefect would name them only when they start).
# A deployment that was paused stays paused (`prefect deploy` alone would resume it).
deploy: install
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/prefect work-pool inspect $(WORK_POOL) >/dev/null 2>&1 \
	  || PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/prefect work-pool create $(WORK_POOL) --type process
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/python -m deploy.keep_paused -- \
	  $(BIN)/prefect --no-prompt deploy --all
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/python -m deploy.automations
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/python -m allocation.flows.naming

# Turns the alerts off on the server, on purpose: deletes the webhook block and disables the
# automations that need it. `make deploy` with ALLOCATION_ALERT_WEBHOOK_URL=https://... turns
# them on again.
alerts-off: install
	PREFECT_API_URL=$(PREFECT_API_URL) ALLOCATION_ALERT_WEBHOOK_URL=off $(BIN)/python -m deploy.automations

# One night of the deployment, by business date, optionally at a later time: START_AT is read
# as UTC whatever the machine's time zone (TZ=UTC), and the confirmation names the night:
#   make night BUSINESS_DATE=2026-11-26 [START_AT='2026-11-30 02:30']
BUSINESS_DATE ?=
START_AT ?=
night: install
	@test -n "$(BUSINESS_DATE)" || { echo "make night: give BUSINESS_DATE=YYYY-MM-DD" >&2; exit 2; }
	TZ=UTC PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/prefect deployment run 'nightly-allocation/nightly' \
	  --param business_date=$(BUSINESS_DATE) --flow-run-name 'night-$(BUSINESS_DATE)' \
	  $(if $(START_AT),--start-at '$(START_AT) UTC')

# Runs the pool's flow runs as subprocesses with this checkout's venv; ALLOCATION_REPO_DIR is
# where prefect.yaml's pull step moves each run (the deployment stores no machine path).
# The deployment's nights read data/inbox (prefect.yaml): it is created, with its orders/ and
# batches/, if missing, so a fresh deployment's first night runs (on an empty inbox) instead of
# failing on a missing folder.
worker: install
	mkdir -p data/inbox/orders data/inbox/batches
	PREFECT_API_URL=$(PREFECT_API_URL) ALLOCATION_REPO_DIR="$(CURDIR)" PATH="$(CURDIR)/$(BIN):$$PATH" \
	  exec $(BIN)/prefect worker start --pool $(WORK_POOL) --install-policy never

# Re-resolve the lock from pyproject.toml's pins (needs the package index).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet setuptools wheel -e '.[dev]'
	{ echo '# Locked dependencies (runtime and dev) for `make install`. Regenerate with `make lock`.'; \
	  .lockvenv/bin/pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
