# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv and
# installs the project first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The official AsyncAPI JSON Schemas (npm @asyncapi/specs), to validate config/schema/asyncapi.yaml
SPECS  := .cache/asyncapi/node_modules/@asyncapi/specs

.PHONY: run test lint bench smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)            ## the all-in-one service (embedded Redis when none is configured)
	$(BIN)/newswire run

test: $(STAMP) $(SPECS)  ## unit + integration tests (real Redis, Celery workers, loopback HTTP)
	$(BIN)/python -m pytest

$(SPECS):
	-command -v npm >/dev/null && npm install --prefix .cache/asyncapi --no-audit --no-fund \
		--silent @asyncapi/specs@6

lint: $(STAMP)
	$(BIN)/ruff check worker tests bench

bench: $(STAMP)          ## end-to-end throughput on loopback pages from ../shared/corpus
	$(BIN)/python bench/throughput.py

smoke:                   ## build the image and run the compose stack with podman (by hand)
	deploy/smoke.sh

clean:
	rm -rf $(VENV) .newswire .pytest_cache .ruff_cache .cache
