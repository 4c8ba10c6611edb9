PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints.txt

.PHONY: demo bench-demo test lint format clean chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test]'
	touch $@

# Main job: train the elastic transformer as a byte-level language model of Python's standard
# library, search bits per byte vs ONNX Runtime latency with LINAS, export the chosen
# sub-networks (README: why this job). A rerun starts afresh; `hwnas run --resume` continues.
demo: $(VENV)/.installed
	rm -rf runs/demo
	$(BIN)/hwnas run --config examples/lm.yaml --out runs/demo

# Searchers compared on NAS-Bench-201 (cifar10 x Pixel 3) on a small budget.
bench-demo: $(VENV)/.installed
	$(BIN)/hwnas bench nb201 --data ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \
		--dataset cifar10 --device pixel3 --searchers random,nsga2,linas \
		--seeds 2 --budget 150 --out runs/bench-demo

# The report's browser test needs Debian's Chromium; installed here when this machine can
# (root with apt), otherwise that one test says why it is skipped.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get \
		>/dev/null 2>&1 && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; }; } || \
		echo "chromium could not be installed: the report's browser test will be skipped"

# The suite runs on both cores (pytest-xdist): its tests are single-threaded, so two workers
# take it from ~7 to ~4.5 minutes here. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(VENV)/.installed-test chromium
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) runs build src/*.egg-info
