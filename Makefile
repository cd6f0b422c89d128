# Every target installs what it needs first, so a fresh clone needs only Python 3.11+.
PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench openapi clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON_BOOTSTRAP) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required as $(PYTHON_BOOTSTRAP)"; exit 1; }
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The devserver's port; make run PORT=3001 when 3000 is taken.
PORT ?= 3000

run: install
	$(PYTHON) -m devserver --port $(PORT)

test: install
	$(PYTHON) -m pytest

# Style and types: ruff everywhere, mypy strict on the rules in src/core.
lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy --strict src/core
	$(VENV)/bin/mypy src/handler src/devserver src/admin src/client
	$(VENV)/bin/cfn-lint template.yaml

# docs/openapi.json, built from the routes' metadata; a test fails when it is stale.
openapi: install
	$(PYTHON) -m handler.openapi docs/openapi.json

# Throughput, rate limit, CPU time and cold start; writes docs/benchmarks.md.
bench: install
	$(PYTHON) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .aws-sam
