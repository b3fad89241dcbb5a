PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The suite runs on PostgreSQL; Django creates and drops its own test_* database.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres

.PHONY: run test test-sqlite superuser bench clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## make run: SQLite database, the demo (once: data, accounts, a trained baseline), web server,
## django-q2 worker and projection runner. Ctrl-C stops them all.
run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo
	@echo
	@echo "  Serving on http://127.0.0.1:$(PORT)/   (log in with a demo account above)"
	@echo
	@$(PY) manage.py qcluster & QCLUSTER=$$!; \
	 $(PY) manage.py run_projections --follow & PROJECTIONS=$$!; \
	 trap 'kill $$QCLUSTER $$PROJECTIONS 2>/dev/null' EXIT INT TERM; \
	 $(PY) manage.py runserver 127.0.0.1:$(PORT)

superuser: $(VENV)/.runtime
	$(PY) manage.py createsuperuser

## make test: the whole suite on PostgreSQL, then the event-log contract suite on SQLite.
test: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	DATABASE_URL=$(TEST_DATABASE_URL) $(VENV)/bin/pytest
	env -u DATABASE_URL $(VENV)/bin/pytest -m contract

test-sqlite: $(VENV)/.dev
	env -u DATABASE_URL $(VENV)/bin/pytest

bench: $(VENV)/.dev
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) bench/event_log.py

clean:
	rm -rf $(VENV) var staticfiles
