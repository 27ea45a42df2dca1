# The two commands a new user needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# Quix Streams (the benchmarks' peer) pins pydantic<2.14, so it lives in a venv of its own.
QUIX_VENV := .venv-bench-quix
QUIX_STAMP := $(QUIX_VENV)/.installed-stamp

.PHONY: setup run test lint typecheck unit integration system-deps kafka-jars bench bench-quick bench-setup clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)

## make run: embedded broker, simulated plant, worker, /metrics and a live terminal view.
run: $(STAMP)
	$(BIN)/linepulse run

## make test: lint, types, unit tests and integration tests against Apache Kafka and Tansu, then the
## benchmark gate (bench-quick, < 5 min), which fails when a ratio falls below its floor.
test: $(STAMP) system-deps kafka-jars lint typecheck
	$(BIN)/python -m pytest -v --durations=15
	$(MAKE) bench-quick

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

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $@

$(QUIX_STAMP): benchmarks/quix-constraints.txt
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install -q --upgrade pip
	$(QUIX_VENV)/bin/python -m pip install -q -c benchmarks/quix-constraints.txt quixstreams river
	touch $@

bench-setup: $(BENCH_STAMP) $(QUIX_STAMP)

## make bench: every benchmark, Apache Kafka and Tansu; writes benchmarks/RESULTS.md and results.json.
bench: bench-setup system-deps kafka-jars
	$(BIN)/python -m benchmarks.run --full

## make bench-quick: the < 5 min gate (Tansu only); results under var/bench/; fails below a floor.
bench-quick: bench-setup
	$(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) $(QUIX_VENV) .mypy_cache .ruff_cache .pytest_cache
