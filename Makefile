# The two commands: `make run` (default experiment) and `make test`. Both create/update .venv first.
# torch is installed alone first, pinned: an unpinned or ranged torch would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.repdyn-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run test lint bench clean-runs

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m repdyn.train $(ARGS)

# System packages the tests drive for real: headless Chromium (report rendering); the Slurm test fixture installs
# Slurm itself. Best-effort: without root the browser tests are skipped with a reason.
test: install
	@bash launch/install_chromium.sh >/dev/null 2>&1 || echo "make test: chromium not installable here; browser tests will be skipped"
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

bench: install
	$(PY) -m repdyn.bench all

clean-runs:
	rm -rf outputs multirun
