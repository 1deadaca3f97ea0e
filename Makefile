# Two commands for a newcomer: `make demo` (the retrain DAG end to end on the local stack)
# and `make test` (lint + the whole suite, services included). Everything else is a building block.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.12 may be a pyenv shim that is not active; take the first interpreter that really runs.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STACK := $(BIN)/python -m scripts.local_stack
WITH_STACK := set -a && source .local/stack.env && set +a &&
SEED_ROWS ?= 20000
# a model config in include/models/: its DAGs are retrain_$(MODEL), drift_monitor_$(MODEL), rollback_$(MODEL)
MODEL ?= vehicle_insurance
# make airflow's topology: celery (compose's: CeleryExecutor on PostgreSQL and Redis, two Celery workers) or local
# (LocalExecutor on SQLite); unset: the running group's, else celery
TOPOLOGY ?=

.PHONY: help venv up down status seed mongo-setup load-csv onboard demo dags-test rollback summary test lint airflow bench bench-1m bench-monitor bench-fleet bench-compare bench-estimators calibrate backtest config-schema

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "python3.12 not found: install it or run 'make PYTHON=/path/to/python3.12'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed ## create .venv with the pinned runtime and test requirements

up: venv ## start the local stack (MongoDB, S3, MLflow, SMTP sink) and write .local/stack.env
	$(STACK) up

airflow: venv ## the stack plus a full Airflow (UI, scheduler, dag-processor, triggerer; on Postgres, Redis, 2 Celery workers; TOPOLOGY=local: LocalExecutor on SQLite), MODEL's DAGs unpaused
	$(STACK) up --airflow $(if $(TOPOLOGY),--topology $(TOPOLOGY)) --unpause retrain_$(MODEL),drift_monitor_$(MODEL),score_$(MODEL)

down: ## stop everything the local stack started
	@test -x $(BIN)/python && $(STACK) down || echo "nothing to stop"

status: ## show each local service, its port and whether it is alive
	$(STACK) status

seed: up ## load SEED_ROWS (20000) sample vehicle-insurance documents into MongoDB, if the collection is empty
	$(WITH_STACK) $(BIN)/python -m include.demo.seed --rows $(SEED_ROWS) --days 30 --if-empty

dags-test: up ## run `airflow dags test retrain_$(MODEL)` once on the local stack (MODEL=vehicle_insurance)
	$(WITH_STACK) $(BIN)/airflow dags test retrain_$(MODEL)

rollback: up ## move the champion back to the version it replaced (refused when there is none)
	$(WITH_STACK) $(BIN)/airflow dags test rollback_$(MODEL)

summary: ## print what the last retrain produced and where to look
	$(WITH_STACK) $(BIN)/python -m include.demo.summary

mongo-setup: up ## as MongoDB's admin: indexes and the pipeline role's privileges for MODEL's config (and retrain_config)
	$(WITH_STACK) $(BIN)/python -m include.retraining.adapters.mongo_setup --admin-conn-id mongo_admin --model-file include/models/$(MODEL).json

load-csv: up ## a CSV into MongoDB: CSV=f.csv DB=db COLLECTION=c [TIMESTAMP=field TIMESTAMP_TYPE=date ID=column END=iso DAYS=30]
	@test -n "$(CSV)" -a -n "$(DB)" -a -n "$(COLLECTION)" || { echo "usage: make load-csv CSV=<file> DB=<db> COLLECTION=<name> [TIMESTAMP=<field>] [TIMESTAMP_TYPE=date|iso_string|epoch_seconds|epoch_millis] [ID=<column>] [END=<iso date>] [DAYS=30]"; exit 2; }
	$(WITH_STACK) $(BIN)/python -m scripts.load_csv --csv "$(CSV)" --database "$(DB)" --collection "$(COLLECTION)" \
		--timestamp "$(or $(TIMESTAMP),ingested_at)" --timestamp-type "$(or $(TIMESTAMP_TYPE),date)" \
		$(if $(ID),--id-column "$(ID)") $(if $(END),--end "$(END)") $(if $(DAYS),--days "$(DAYS)")

# history:collection pairs in database histories; each collection's model config is bench/backtest/models/<collection>.json
HISTORIES := rainfall:rainfall employment:employment abrupt:insurance_abrupt gradual:insurance_gradual
.PHONY: histories

histories: up ## time-ordered histories for make backtest in database histories (about 3 min once; a loaded one is skipped), readable by the pipeline's user
	$(WITH_STACK) for pair in $(HISTORIES); do collection=$${pair#*:}; \
		$(BIN)/python -m include.demo.histories $${pair%%:*} --database histories --collection $$collection \
			--replace --skip-if-loaded --conn-id mongo_admin \
		&& $(BIN)/python -m include.retraining.adapters.mongo_setup --model-file bench/backtest/models/$$collection.json \
		|| exit 1; done

onboard: venv ## write a model config from a sample: make onboard DB=.. COLLECTION=.. LABEL=.. [TIMESTAMP=.. MODEL=.. CONN=.. OUT=.. FORCE=1]
	@test -n "$(DB)" -a -n "$(COLLECTION)" -a -n "$(LABEL)" || { echo "usage: make onboard DB=<db> COLLECTION=<name> LABEL=<field> [TIMESTAMP=<field>] [MODEL=<name>] [CONN=<conn id>] [OUT=<file>] [FORCE=1]"; exit 2; }
	$(if $(wildcard .local/stack.env),$(WITH_STACK)) $(BIN)/python -m include.retraining.onboard --db "$(DB)" --collection "$(COLLECTION)" --label "$(LABEL)" \
		$(if $(TIMESTAMP),--timestamp "$(TIMESTAMP)") $(if $(filter command line environment,$(origin MODEL)),--model "$(MODEL)") $(if $(CONN),--conn "$(CONN)") $(if $(OUT),--out "$(OUT)") $(if $(FORCE),--force)

demo: up ## the main job: stack up, sample data, two retrain runs (first champion, then drift), summary
	$(WITH_STACK) $(BIN)/python -m include.demo.demo

BENCH_SIZES ?= 10k,100k
BENCH_REPEAT ?= 3

bench: up ## benchmarks at BENCH_SIZES (10k,100k): ratios against a baseline measured in the same run
	$(WITH_STACK) BENCH_SIZES=$(BENCH_SIZES) BENCH_REPEAT=$(BENCH_REPEAT) $(BIN)/python -m bench.run

bench-1m: up ## the same suite at 1M rows (about 27 min on 2 cores; seeds 1M documents once, 2 min)
	$(WITH_STACK) BENCH_SIZES=1m BENCH_REPEAT=$(BENCH_REPEAT) $(BIN)/python -m bench.run

bench-monitor: up ## seconds from inserting drifted documents to the drift alert and to a new model version, under the full Airflow group (BENCH_REPEAT rounds)
	$(WITH_STACK) BENCH_REPEAT=$(BENCH_REPEAT) $(BIN)/python -m bench.run --sizes '' --sections monitor

bench-fleet: up ## N (10) models onboarded and retrained at once on the celery group: fleet vs N x one run, scheduler lag, peak RSS per worker, parse time
	$(WITH_STACK) $(BIN)/python -m bench.fleet --models $(or $(N),10)

backtest: up ## replay MODEL's history: make backtest MODEL=<model> FROM=<date> TO=<date> [STEP=1d] (table, CSV, PNG in .local/backtest/)
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backtest MODEL=<model> FROM=<date> TO=<date> [STEP=1d] [POLICIES=configured,always,never]"; exit 2; }
	$(WITH_STACK) $(BIN)/python -m include.retraining.backtest --model "$(MODEL)" --from "$(FROM)" --to "$(TO)" --step "$(or $(STEP),1d)" \
		$(if $(POLICIES),--policies "$(POLICIES)")

config-schema: venv ## write the JSON Schema of a model file (include/retraining/configs/model.schema.json) from the typed config
	$(BIN)/python -m include.retraining.core.schema

calibrate: venv ## drift checks and gate: false alarms and power, tuned and reported on disjoint seeds (12-19 min, no services)
	$(BIN)/python -m bench.calibrate --nights $(or $(NIGHTS),100) --retrains $(or $(RETRAINS),100)

bench-estimators: venv ## holdout quality and fit cost of the candidate estimators (ROWS=1000000)
	$(BIN)/python -m bench.estimators --rows $(or $(ROWS),1000000)

# `make bench-compare A B` (or A=... B=...): the words after the goal are the two commits, not goals
ifeq (bench-compare,$(firstword $(MAKECMDGOALS)))
COMPARE_ARGS := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
$(eval $(COMPARE_ARGS):;@:)
endif

bench-compare: venv ## compare two commits' bench results: make bench-compare <sha A> <sha B>
	$(BIN)/python -m bench.compare $(or $(A),$(word 1,$(COMPARE_ARGS))) $(or $(B),$(word 2,$(COMPARE_ARGS)))

lint: venv ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: up lint ## lint + unit, integration and e2e tests against the local stack
	$(WITH_STACK) $(BIN)/python -m pytest
