# The two commands: `make run` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run dev test unit lint-imports lint-chart sync-crds clean bench bench-quick chaos chaos-nightly load

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Taskflow needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Start PostgreSQL, Redis, the API and 2 workers locally, run the example DAG, show it, stop.
run: install
	$(VENV)/bin/taskflow dev --workers 2 --submit deploy/examples/diamond.yaml --exit-when-done

# The same, but keep serving until Ctrl-C.
dev: install
	$(VENV)/bin/taskflow dev --workers 2

lint-imports: install
	$(VENV)/bin/lint-imports

# The chart's CRD copy, the Dockerfiles (hadolint) and the Helm chart (helm lint --strict).
lint-chart: install
	VENV_BIN=$(VENV)/bin bash scripts/lint-packaging.sh

# Copy crds/*.yaml into charts/taskflow/crds/ after changing a CRD.
sync-crds:
	bash scripts/sync-chart-crds.sh

test: install lint-imports lint-chart
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

# The fault-injection suite alone (docs/guarantees.md); `make test` runs it at CI size.
chaos: install
	$(PY) -m pytest tests/chaos -s

# The same at nightly size (about 10x; hours, not minutes). Figures in tests/chaos/results/.
chaos-nightly: install
	TASKFLOW_CHAOS_SCALE=nightly $(PY) -m pytest tests/chaos -s

# Taskflow vs Dramatiq, Celery, RQ and arq on this machine (bench/README.md). Writes bench/results/.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) -m bench.run

# Noops and a chain through the REST API of `taskflow dev` with 2 workers (bench/api_load.py).
load: install
	scripts/api-load.sh

# One trial, smaller sizes, durable profile only: about 5 minutes.
bench-quick: $(VENV)/.bench-installed
	$(PY) -m bench.run --quick

clean:
	rm -rf $(VENV) .taskflow .pytest_cache
