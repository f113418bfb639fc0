# Common commands. `make run` serves the demo on http://127.0.0.1:8080, `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test install install-dev lint format check bench bench-engine bench-workflow-nodes bench-floor bench-knowledge fake-upstream screenshots vendor-tinyflow vendor-redoc

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
	$(BIN)/python -m benchmarks.run --server uvicorn --scaling $(BENCH_ARGS)
	$(MAKE) bench-engine
	$(MAKE) bench-knowledge

# Workflow engine time per shape (chain, fan-out, loops), in-process.
bench-engine: install-dev
	$(BIN)/python -m benchmarks.workflow_engine
	$(BIN)/python -m benchmarks.workflow_nodes

# Refresh the vendored Tinyflow editor (@tinyflow-ai/ui, LGPL-3.0) from the npm registry.
TINYFLOW_VERSION ?= 1.2.3
vendor-tinyflow: | $(BIN)/python
	$(BIN)/python scripts/vendor_tinyflow.py --version $(TINYFLOW_VERSION)

# Engine time of a 100-node templateNode chain and a 100-node codeNode chain (no server).
bench-workflow-nodes: install-dev
	$(BIN)/python -m benchmarks.workflow_nodes

# aiflowy against a bare forwarder under the same uvicorn: ratios, 1,000 streams, a profile.
bench-floor: install-dev
	$(BIN)/python -m benchmarks.floor --profile 2000 $(BENCH_ARGS)

# pushData items/s and searchTest p50/p95 per mode at 100,000 items, embedded and pgvector
bench-knowledge: install-dev
	$(BIN)/python -m benchmarks.knowledge $(BENCH_KNOWLEDGE_ARGS)

fake-upstream: install
	$(BIN)/python -m aiflowy.testing.fake_upstream --port 9100

# The README's share-link and playground screenshots (docs/images/), taken in Chromium.
screenshots: install-dev
	$(BIN)/python docs/screenshots.py

# Refresh the vendored Redoc of /api/docs/ (unmodified files from the drf-spectacular-sidecar
# wheel; see aiflowy/static/aiflowy/vendor/redoc/README.md).
REDOC_SIDECAR_VERSION ?= 2026.10.1
REDOC_DIR := aiflowy/static/aiflowy/vendor/redoc
vendor-redoc: | $(BIN)/python
	rm -rf .vendor-redoc && mkdir .vendor-redoc
	$(BIN)/pip download -q --no-deps -d .vendor-redoc drf-spectacular-sidecar==$(REDOC_SIDECAR_VERSION)
	cd .vendor-redoc && unzip -q -o *.whl 'drf_spectacular_sidecar/static/drf_spectacular_sidecar/redoc/*'
	cp .vendor-redoc/drf_spectacular_sidecar/static/drf_spectacular_sidecar/redoc/LICENSE \
	   .vendor-redoc/drf_spectacular_sidecar/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js \
	   .vendor-redoc/drf_spectacular_sidecar/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js.LICENSE.txt \
	   $(REDOC_DIR)/
	rm -rf .vendor-redoc
	sed -i 's/sidecar` [0-9.]* wheel/sidecar` $(REDOC_SIDECAR_VERSION) wheel/' $(REDOC_DIR)/README.md
