# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
# Extra `uv pip compile` flags for `make lock`, e.g. LOCK_FLAGS="--upgrade-package pandas".
LOCK_FLAGS ?=
# Lock files are resolved for any Linux/macOS/Windows Python 3.11 (markers kept), hashed for every file on
# PyPI, and say `make lock` in their header. `uv pip compile` keeps a lock file's existing pins as
# preferences, so a new package moves nothing else unless it must.
UV_COMPILE = $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-strip-extras \
	--custom-compile-command "make lock" $(LOCK_FLAGS)

.PHONY: setup lock train demo test test-fast bench lint format clean

# uv (the version pinned in requirements-dev.in) bootstraps with the pip every Python has. Its hashes
# are taken from the dev lock, so even the bootstrap installs a verified file.
$(UV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	sed -n '/^uv==/,/# via/p' requirements-dev.txt > $(VENV)/uv-lock.txt
	$(PY) -m pip install --quiet --no-deps --require-hashes -r $(VENV)/uv-lock.txt

# `uv pip sync` makes .venv exactly the dev lock (a package dropped from the lock leaves .venv too).
$(STAMP): requirements-dev.txt | $(UV)
	$(UV) pip sync --quiet --python $(PY) --require-hashes requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the dev lock (tests and tools, with every runtime package)

# After editing a requirements*.in file. The full runtime lock comes first: the images' smaller locks and
# the dev lock are constrained by it, so every lock pins the versions the tests run.
lock: | $(UV)  ## re-resolve the lock files from the requirements*.in files
	$(UV_COMPILE) requirements.in -o requirements.txt
	$(UV_COMPILE) requirements-flows.in -c requirements.txt -o requirements-flows.txt
	$(UV_COMPILE) requirements-metrics.in -c requirements.txt -o requirements-metrics.txt
	$(UV_COMPILE) requirements-base.in -c requirements.txt -o requirements-base.txt
	$(UV_COMPILE) requirements-dev.in -o requirements-dev.txt

train: setup  ## train the shipped examples into their model folders (models/ride_duration, models/health_insurance) and prepare them
	$(PY) -m ride_duration.train
	$(PY) -m health_insurance.train
	$(PY) -m monitoring_core.prepare --all models

demo: setup  ## run the whole stack locally with simulated traffic and drift
	$(PY) -m local_stack.demo

# Two processes, whole test files each (a module's processes and fixtures stay in one): the suite mostly waits
# on the processes it starts, so two files at a time halve its wall time on a 2-core machine.
test: setup  ## the whole test suite (what CI runs)
	$(PY) -m pytest -n 2 --dist loadfile

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
