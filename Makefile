# `make run` serves the exchange and `make test` tests it; both set up the
# virtualenv on first use, and the local PostgreSQL cluster (.pgdata) or a
# throwaway one as needed. DATABASE_URL / TEST_DATABASE_URL use a server of
# your own instead.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Tests run in this many processes (pytest-xdist), each with its own PostgreSQL
# and servers: most of the suite waits on sockets and clocks, not on a CPU.
TEST_WORKERS ?= 2

.PHONY: venv db run cluster cluster-restart test lint audit reset clean load bench bench-report bench-profile

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-local.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

db: venv
ifdef DATABASE_URL
	@echo "DATABASE_URL is set: not starting the local PostgreSQL cluster"
else
	$(PY) -m app.local.cluster start
endif

run: venv
	$(PY) -m app.run

# EXCHANGE_HOSTS instances (3) behind HAProxy, which must be installed; see README.md.
cluster: venv
	$(PY) -m app.cluster

# A rolling restart of the instances of a running `make cluster`, one after the other.
cluster-restart: venv
	$(PY) -m app.cluster restart

test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Load against a running `make run`: 32 HTTP clients for 60 s, CSV under var/load/.
# LOAD_USER=LegacyTcpUser goes through the TCP shim; LOAD_ARGS are locust's options;
# LOAD_* variables shape the workload (see locustfile.py).
LOAD_HOST ?= http://127.0.0.1:8000
LOAD_USER ?= ExchangeHttpUser
LOAD_ARGS ?= -u 32 -r 32 -t 60s
load: venv
	mkdir -p var/load
	$(PY) -m locust -f locustfile.py --headless --host $(LOAD_HOST) --csv var/load/load \
		$(LOAD_ARGS) $(LOAD_USER)

# Starts its own service and measures every point (about 17 min, plus minutes of setup the first time;
# see bench/run.py). BENCH_BASELINE=<revision> measures that revision's service beside it.
bench: venv
	$(PY) -m bench.run

# Where a request's time goes: py-spy samples of the workers under load.
bench-profile: venv
	$(PY) -m bench.profile

# Plots and tables of the latest `make bench` into docs/.
bench-report: venv
	$(PY) -m bench.report

# Checks that the books balance on the running database (DATABASE_URL or .pgdata).
audit: venv
	$(PY) -m app.audit

# Stops the local cluster and deletes its data.
reset: venv
	$(PY) -m app.local.cluster reset

# Removes the virtualenv and caches; the database stays (see reset).
clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
