# The two promises of the README: `make serve` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins versions of boto3 and others that the app's venv cannot take: it has a venv of its own.
CHECKOV_VENV := .venv-checkov
PIP_FLAGS := --disable-pip-version-check -q
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the end-to-end tests and benchmarks drive: real OCI clients (docker.io brings dockerd,
# containerd and ctr) and the reference registry.
DEB_PACKAGES := skopeo podman docker-registry docker.io apache2-utils
# Test processes (pytest-xdist): one per core plus one, because the end-to-end tests spend much of their
# time waiting on the servers and clients they start (2 workers kept 1.6 of 2 cores busy; 3 keep 1.8,
# and the suite ends ~13 % sooner). A module's tests stay on one worker (`--dist loadfile`), so module
# fixtures (a packaged template, an e2e server, dockerd) start once; tests/conftest.py hands out the long
# modules first so that the workers end together.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
export REGISTRY_PORT ?= 5000
export REGISTRY_DATA_DIR ?= .registry-data

.PHONY: help install system-deps serve test unit lint layers typecheck bench package deploy destroy clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt requirements-cli.txt requirements-scanner.txt requirements-checkov.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@# Both venvs at once: ~58 s instead of ~83 s on a fresh clone.
	$(BIN)/pip install $(PIP_FLAGS) -r requirements-dev.txt & app=$$!; \
	$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) -r requirements-checkov.txt && \
	  $(CHECKOV_VENV)/bin/python tests/checkov_tables.py & checkov=$$!; \
	wait $$app; app=$$?; wait $$checkov; checkov=$$?; test $$app = 0 && test $$checkov = 0
	touch $(STAMP)

install: $(STAMP) ## Create the venv and install Python dependencies

system-deps: ## Install the Debian packages the e2e tests need (skopeo, podman, distribution)
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

serve: install ## Run the registry on 127.0.0.1:$REGISTRY_PORT with state in $REGISTRY_DATA_DIR
	exec $(BIN)/python -m chalicelib.local

lint: install ## ruff (lint + format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

layers: install ## import-linter: the layer contracts in .importlinter (api > services > stores > core ...)
	$(BIN)/lint-imports --no-cache

typecheck: install ## mypy on the application code
	$(BIN)/mypy

test: install system-deps lint layers typecheck ## Lint, type-check, unit, functional and end-to-end tests
	@# Bytecode for every process the tests start (servers, CLIs): Python would not write it itself
	@# where PYTHONDONTWRITEBYTECODE is set, and compile the same modules again in each of them.
	$(BIN)/python -m compileall -q app.py chalicelib tests >/dev/null
	$(PYTEST)

unit: install ## Unit and functional tests only (no real clients)
	$(PYTEST) tests/unit tests/functional

bench: install system-deps ## Benchmarks against make serve and CNCF distribution
	$(BIN)/python -m tests.bench

package: install ## chalice package + merge infra/ + cfn-lint into build/package
	bash infra/package.sh build/package

STAGE ?= dev
deploy: install ## Deploy to AWS: the supporting stack, then chalice deploy (STAGE=dev; DRY_RUN=1 prints the calls)
	$(BIN)/python infra/deploy.py deploy --stage $(STAGE) $(if $(DRY_RUN),--dry-run) $(DEPLOY_ARGS)

destroy: install ## Delete the app and the stack of STAGE; table, bucket and secrets stay unless DESTROY_DATA=1
	$(BIN)/python infra/deploy.py destroy --stage $(STAGE) $(if $(filter 1,$(DESTROY_DATA)),--delete-data)

clean: ## Remove the venv, caches and local state
	rm -rf $(VENV) $(CHECKOV_VENV) build .mypy_cache .ruff_cache .pytest_cache .registry-data
