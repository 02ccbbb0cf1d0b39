# `make run` serves the exchange and `make test` tests it; both set up the
# virtualenv on first use, and the local PostgreSQL cluster (.pgdata) or a
# throwaway one as needed. DATABASE_URL / TEST_DATABASE_URL use a server of
# your own instead.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv db run test lint audit reset clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-local.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

db: venv
ifdef DATABASE_URL
	@echo "DATABASE_URL is set: not starting the local PostgreSQL cluster"
else
	$(PY) -m app.storage.cluster start
endif

run: venv
	$(PY) -m app.run

test: lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Checks that the books balance on the running database (DATABASE_URL or .pgdata).
audit: venv
	$(PY) -m app.audit

# Stops the local cluster and deletes its data.
reset: venv
	$(PY) -m app.storage.cluster reset

# Removes the virtualenv and caches; the database stays (see reset).
clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
