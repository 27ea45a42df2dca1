# The two commands a new user needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint typecheck unit integration system-deps kafka-jars bench bench-quick clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)

## make run: embedded broker, simulated plant, worker, /metrics and a live terminal view.
run: $(STAMP)
	$(BIN)/linepulse run

## make test: lint, types, unit tests and integration tests against Apache Kafka and Tansu.
test: $(STAMP) system-deps kafka-jars lint typecheck
	$(BIN)/python -m pytest -v --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP) system-deps kafka-jars
	$(BIN)/python -m pytest tests/integration

# Debian packages the integration tests use (Java, Maven, Prometheus, Chromium); installs only what is missing.
system-deps:
	scripts/install-system-deps

# Apache Kafka jars from Maven Central into ~/.cache/linepulse (outside the repo).
kafka-jars: $(STAMP)
	$(BIN)/linepulse kafka fetch

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
