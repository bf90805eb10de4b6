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
	$(PY) -m services.devenv.run $(ARGS)

bench: venv
	$(PY) -m benchmarks $(ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: venv
	$(PY) -m mypy

contracts: venv
	$(PY) -m schemas.export --check

# Debian's chromium for the browser tests (tests/browser; Playwright's own browser download cannot be used):
# installed when missing if we are root, as CI is; otherwise say how, and those tests skip (they fail under CI=true).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq chromium fonts-liberation >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo make browser-deps' (or apt-get install chromium); browser tests skip"; \
	  fi; }

test: lint typecheck contracts browser-deps
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf var .mypy_cache .ruff_cache .pytest_cache
