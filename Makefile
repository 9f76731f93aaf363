# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup train demo test test-fast bench lint format clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned requirements

train: setup  ## train the model and write artifacts/
	$(PY) -m ride_duration.train

demo: setup  ## run the whole stack locally with simulated traffic and drift
	$(PY) -m local_stack.demo

test: setup  ## the whole test suite (what CI runs)
	$(PY) -m pytest

test-fast: setup  ## unit tests only, no real processes
	$(PY) -m pytest -m "not integration"

bench: setup  ## benchmarks, each printing ratios against a baseline measured in the same run
	$(PY) -m bench

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) artifacts .pytest_cache
