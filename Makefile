# vidrec: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORLD ?= demo
DEFAULT_DATA := $(CURDIR)/data/$(WORLD)
export VIDREC_DATA ?= $(DEFAULT_DATA)
# Only the default folder is (re)generated as a demo world; your own data (VIDREC_DATA=folder,
# e.g. from an importer's write_raw_dir) is read as it is, never written into.
PIPELINE_INPUT := $(if $(filter $(abspath $(DEFAULT_DATA)),$(abspath $(VIDREC_DATA))),world,$(STAMP))
# Every tool's environment (state root, telemetry off, offline) comes from one place: vidrec/config.py.
ENV = eval "$$($(BIN)/python -m vidrec.config)" &&

.PHONY: install world pipeline demo test ui serve rollback bento repro clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)

world: $(STAMP)
	$(ENV) $(BIN)/python -m vidrec.world.generate --size $(WORLD) --out $(VIDREC_DATA)

RUN_MAIN = $(BIN)/dagster job execute -m assets.definitions -j main

pipeline: $(PIPELINE_INPUT)
	$(ENV) $(RUN_MAIN)

# A candidate that the blocking checks keep out of production fails `make pipeline` (schedulers and CI
# should see it), but is a normal end for the demo: assets.run_outcome says which rules stopped it and
# the demo serves the champion, which keeps production. Any other failure stops the demo.
demo: $(PIPELINE_INPUT)
	$(ENV) { $(RUN_MAIN) || $(BIN)/python -m assets.run_outcome; }
	$(ENV) $(BIN)/python -m bentos.demo

test: $(STAMP)
	$(ENV) $(BIN)/python -m pytest

ui: $(STAMP)
	$(ENV) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

serve: $(STAMP)
	$(ENV) $(BIN)/bentoml serve bentos.service:Recommender --host 127.0.0.1 --port 3001

rollback: $(STAMP)
	$(ENV) $(BIN)/python -m vidrec.registry rollback

bento: $(STAMP)
	$(ENV) $(BIN)/bentoml build -f bentos/bentofile.yaml

# dvc.yaml stages call `python`, so the venv goes first on PATH.
repro: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro && $(BIN)/dvc metrics show

clean:
	rm -rf .vidrec
