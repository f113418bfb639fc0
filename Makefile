# Common commands. `make run` serves the demo on http://127.0.0.1:8080, `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test install install-dev lint format check bench bench-knowledge fake-upstream

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# A development .env: DEBUG on and a random SECRET_KEY, created once, never committed.
.env:
	@printf 'DEBUG=true\nSECRET_KEY=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "Wrote .env (DEBUG=true, a random SECRET_KEY)."

run: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setupdemo --host http://$(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install-dev
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: install-dev
	SECRET_KEY=check $(BIN)/python manage.py check
	SECRET_KEY=check $(BIN)/python manage.py makemigrations --check --dry-run

bench: install-dev
	$(BIN)/python -m benchmarks.run --server uvicorn $(BENCH_ARGS)

# pushData items/s and searchTest p50/p95 per mode at 100,000 items, embedded and pgvector
bench-knowledge: install-dev
	$(BIN)/python -m benchmarks.knowledge $(BENCH_KNOWLEDGE_ARGS)

fake-upstream: install
	$(BIN)/python -m aiflowy.testing.fake_upstream --port 9100
