# ModelHub: `make run` starts the service with demo models; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make test` skips long load/fault scenarios; `make test PYTEST_MARK=` runs everything.
PYTEST_MARK ?= not slow
PYTEST_ARGS ?=
# Static files are collected again only when their manifest is older than one
# of ours, the settings or the install stamp: collectstatic recompresses every
# file (~30 s with brotli installed, which a test dependency brings).
STATIC_ROOT := $(or $(MODELHUB_STATIC_ROOT),staticfiles)
STATIC_SOURCES := $(shell find registry monitoring api modelhub -path '*/static*' 2>/dev/null)

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	@echo "== installing runtime dependencies (first start or requirements.txt changed)"
	@$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt requirements-extras.txt | $(BIN)/python
	@echo "== installing test dependencies (first run or requirements changed)"
	@$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $(VENV)/.runtime $@

$(STATIC_ROOT)/staticfiles.json: $(STATIC_SOURCES) modelhub/settings.py $(VENV)/.runtime
	@echo "== collecting static files (first start or changed; ~30 s)"
	@$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@touch $@

# migrate, loaddemos and ensureadmin in one Python process: each started alone
# pays Django's start-up again (0.8 s idle, 2 s on a busy 2-core machine), and
# each is quick when it has nothing to do.
PREPARE := import os; from django.core.management import call_command as c; \
	c("migrate", interactive=False); c("loaddemos"); \
	c("ensureadmin", url="http://%s/admin/" % os.environ.get("MODELHUB_BIND", "127.0.0.1:8000"))

run: $(VENV)/.runtime $(STATIC_ROOT)/staticfiles.json
	@$(BIN)/python manage.py shell --no-imports -c '$(PREPARE)'
	$(BIN)/gunicorn --config modelhub/gunicorn.conf.py

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(if $(PYTEST_MARK),-m "$(PYTEST_MARK)") $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache test-artifacts
