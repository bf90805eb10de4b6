# Two entry points (README): `make run` and `make test`. Both create or update the venv first.
# `make bench [ARGS=--quick]` runs every benchmark and writes var/bench/results.md and .json (docs/benchmarks.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run bench test lint typecheck contracts unit venv clean browser-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: venv
	$(PY) -m devtools.run $(ARGS)

bench: venv
	$(PY) -m benchmarks $(ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Strict mypy over what pyproject's [tool.mypy] lists: the packages, devtools, benchmarks and tests/.
typecheck: venv
	$(PY) -m mypy

contracts: venv
	$(PY) -m schemas.export --check

# Debian's chromium for the browser tests (tests/browser; Playwright's own browser download cannot be used):
# installed when missing if we are root, as CI is; otherwise say how, and those tests skip (they fail under CI=true).
# Debian packages the checks drive: chromium for the browser tests, prometheus for promtool (alert rules).
browser-deps:
	@{ test -x /usr/bin/chromium && test -x /usr/bin/promtool; } || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium and prometheus (promtool) for the browser and alert-rule tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation prometheus >/dev/null; \
	  else \
	    echo "chromium or promtool is missing: run 'sudo make browser-deps' (apt-get install chromium prometheus); those tests skip"; \
	  fi; }

test: lint typecheck contracts browser-deps
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf var .mypy_cache .ruff_cache .pytest_cache
