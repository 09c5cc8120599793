# ImaLink: `make run` starts everything, `make test` runs the whole suite. Both set themselves up first:
# `make run` installs only what ImaLink needs to run; `make test` adds the test extras (pytest, Playwright, ...).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
# Processes per pass (pytest-xdist): the SQLite and PostgreSQL passes run side by side, two processes each. Under
# that load a synchronous API answer can take longer than the default 30 s sync wait, so the suite lets every
# synchronous answer wait 180 s (tests/conftest.py); TEST_PROCESSES=1 runs each pass in one process.
TEST_PROCESSES ?= 2

.PHONY: lint run test test-sqlite test-postgres test-reliability setup setup-test migrate clean browser bench-import bench-scan bench-pages bench-validate bench-load bench-recovery bench-replication

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "ImaLink needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PIP) -e '.[test]'
	@touch $(TEST_STAMP)

setup: $(STAMP)

setup-test: $(TEST_STAMP)

# Browser tests drive Debian's Chromium through Playwright (no browser download). As root it is installed
# here; elsewhere install the chromium package yourself, or the browser tests are skipped (not under CI=true).
# The exiv2 command is installed beside it: the XMP tests check what ImaLink writes with a second reader.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v exiv2 >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian's chromium and exiv2 for the browser and XMP tests ..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium exiv2 >/dev/null; \
		else echo "Chromium or exiv2 is not installed: their tests will be skipped (apt-get install chromium exiv2)."; fi; }

migrate: setup
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py serve

# The suite runs once on SQLite and once on PostgreSQL. Under CI=true a missing PostgreSQL is a failure.
# Tests marked database_independent (pure media code, the fuzz pass) touch no database, and the four
# 20-kill loops (one_database) test file handling: the SQLite pass alone runs them.
# The two passes run side by side (they share nothing: own databases, own queues, own temporary folders);
# each one's output is shown whole when it ends.
test: setup-test browser lint
	$(PY) manage.py makemigrations --check --dry-run
	@echo "== the SQLite and PostgreSQL passes run side by side; each one's output follows when it ends =="
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

test-sqlite: setup-test
	env -u DATABASE_URL $(PY) -m pytest -n $(TEST_PROCESSES) $(PYTEST_ARGS)

test-postgres: setup-test
	@if [ "$$CI" = "true" ] || $(PY) -c 'import psycopg,sys; psycopg.connect("$(PG_TEST_URL)", connect_timeout=2).close()' 2>/dev/null; then \
		echo "== PostgreSQL pass ($(PG_TEST_URL)) =="; \
		DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest -n $(TEST_PROCESSES) -m "not database_independent and not one_database" $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL at $(PG_TEST_URL) does not answer: the PostgreSQL pass is skipped (it is required under CI=true)."; \
	fi

# ruff: lint (pycodestyle, pyflakes, import order) and the formatter's check, line length 120; import-linter:
# the apps' layers, each importing only downward (both configured in pyproject.toml).
lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# The reliability and security suite alone (it is also part of make test).
test-reliability: setup-test browser
	env -u DATABASE_URL $(PY) -m pytest tests/reliability $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# Benchmarks print a table and write their figures to benchmarks/results/ (not part of make test).
bench-import: migrate
	$(PY) benchmarks/import_benchmark.py

bench-scan: setup
	$(PY) benchmarks/scan_benchmark.py

bench-pages: setup
	$(PY) benchmarks/pages_benchmark.py

bench-validate: setup
	$(PY) benchmarks/validate_benchmark.py

bench-recovery: setup
	$(PY) benchmarks/recovery_benchmark.py

# 50 clients against gunicorn (README's Production command) during an import and a scan; needs Redis.
# Its clients use aiohttp, one of the test extras.
bench-load: setup-test
	$(PY) benchmarks/load_benchmark.py

# 2 GB of camera JPEGs replicated beside rsync -a, and a 100,000-file storage migrated (time, peak memory).
bench-replication: setup
	$(PY) benchmarks/replication_benchmark.py

# 20 clients fetch the OpenAPI document from gunicorn while a list call is timed; aiohttp is a test extra.
bench-openapi: setup-test
	$(PY) benchmarks/openapi_benchmark.py
