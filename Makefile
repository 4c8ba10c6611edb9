PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints.txt

.PHONY: demo test lint format clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test]'
	touch $@

# Main job: until the super-network lands, a NAS-Bench-201 comparison of the searchers on a small budget.
demo: $(VENV)/.installed
	$(BIN)/hwnas bench nb201 --data ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \
		--dataset cifar10 --device pixel3 --searchers random,nsga2,linas \
		--seeds 2 --budget 150 --out runs/demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) runs build src/*.egg-info
