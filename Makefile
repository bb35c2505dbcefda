# Two commands do all the set-up on a fresh machine: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test bench venv migrate seed node browser pango postgres clean lint translations

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when a requirements file changed.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed pango

# Debian's pango for WeasyPrint (the patient record as a PDF); pip cannot install it.
pango:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0'; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian pango…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 >/dev/null; \
	  else echo "pango is not installed and we are not root: the PDF record will not work"; fi; \
	fi

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: node_modules/.installed

instance/secret_key:
	mkdir -p instance
	$(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $@
	chmod 600 $@

migrate: venv instance/secret_key
	RECOVERY_ENV=development $(BIN)/flask db upgrade

seed: migrate
	RECOVERY_ENV=development $(BIN)/flask seed-demo --url http://127.0.0.1:$(PORT)

run: seed
	@echo "Starting the web app and the scheduler (Ctrl-C stops both)…"
	RECOVERY_ENV=development SECRET_KEY=$$(cat instance/secret_key) PORT=$(PORT) \
	  PUBLIC_BASE_URL=http://127.0.0.1:$(PORT) $(BIN)/honcho start -f Procfile

# Debian's Chromium for the browser tests (Playwright's own download does not work here).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian chromium…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed and we are not root: browser tests will say so"; fi; \
	fi

# The suite runs again on PostgreSQL when one answers on 127.0.0.1:5432; under CI=true it must.
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then \
	      echo "Installing Debian postgresql…"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	    fi; \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start || true; \
	    for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  fi; \
	fi

# The whole suite in two runs: the in-process tests on TEST_WORKERS workers (pytest-xdist), then the
# multi-process ones (marked slow: they time leases, kill processes, start servers) on their own, so
# that what they time is not the other run's load. PYTEST_ARGS runs just what it names, in one run.
TEST_WORKERS ?= 2
test: venv node browser postgres
ifeq ($(strip $(PYTEST_ARGS)),)
	@rc=0; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" || rc=$$?; \
	$(BIN)/python -m pytest -m slow || rc=$$?; \
	exit $$rc
else
	$(BIN)/python -m pytest $(PYTEST_ARGS)
endif

bench: venv node browser postgres
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: venv
	$(BIN)/bandit -q -r recovery app.py -ll -ii

clean:
	rm -rf $(VENV) node_modules instance .pytest_cache

# Patient pages in other languages (README "Adding a language"): extract the English msgids, merge
# them into every catalog under translations/, compile the .mo files the app reads (committed, so
# `make run` needs no build step; tests/system/test_translations.py fails when a .mo is stale).
translations: venv
	PYTHONPATH=. $(BIN)/pybabel extract -F babel.cfg -k field_error --no-location --sort-output \
	  -k ngettext:1,2 --omit-header -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete --width 110
	$(BIN)/pybabel compile -d translations --statistics
