# vidrec: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DVC gets a tool environment of its own: its hydra/omegaconf pin antlr4-python3-runtime 4.9.3, and
# Dagster's selection parser (`dagster asset materialize --select ...`) needs 4.13.
DVC_VENV := .venv-dvc
DVC := $(DVC_VENV)/bin/dvc
DVC_STAMP := $(DVC_VENV)/.installed
WORLD ?= demo
DEFAULT_DATA := $(CURDIR)/data/$(WORLD)
export VIDREC_DATA ?= $(DEFAULT_DATA)
# Only the default folder is (re)generated as a demo world; your own data (VIDREC_DATA=folder,
# e.g. from an importer's write_raw_dir) is read as it is, never written into.
PIPELINE_INPUT := $(if $(filter $(abspath $(DEFAULT_DATA)),$(abspath $(VIDREC_DATA))),world,$(STAMP))
# Every tool's environment (state root, telemetry off, offline) comes from one place: vidrec/config.py.
ENV = eval "$$($(BIN)/python -m vidrec.config)" &&

.PHONY: lint install dvc-env world pipeline demo loop test ui serve rollback bento repro clean

# An environment made before DVC moved to .venv-dvc still has it there, broken by antlr4 4.13: removed.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if $(BIN)/pip show --quiet dvc >/dev/null 2>&1; then \
		$(BIN)/pip uninstall --quiet --yes dvc hydra-core omegaconf; fi
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

$(DVC_STAMP): constraints-dvc.txt
	test -x $(DVC_VENV)/bin/python || $(PYTHON) -m venv $(DVC_VENV)
	$(DVC_VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints-dvc.txt dvc
	touch $@

install: $(STAMP)

dvc-env: $(DVC_STAMP)

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

# The closed loop (benchmarks/loop.py): DAYS simulated days against the real service and nightly pipeline.
DAYS ?= 7
# LOOP_ARGS: more benchmarks/loop.py options, e.g. `make loop DAYS=7 LOOP_ARGS=--ab-last-day`.
LOOP_ARGS ?=
loop: $(PIPELINE_INPUT)
	$(ENV) $(BIN)/python benchmarks/loop.py --world $(WORLD) --data $(VIDREC_DATA) --days $(DAYS) $(LOOP_ARGS)

# VIDREC_DVC: the DVC executable tests/test_dvc.py runs.
test: $(STAMP) $(DVC_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(ENV) VIDREC_DVC=$(CURDIR)/$(DVC) $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# `dagster dev` through assets/ui.py, which stops it (webserver, daemon, code servers) within 10 s of
# Ctrl-C or SIGTERM; exec, so the signal make passes to the recipe reaches it.
UI_PORT ?= 3000
ui: $(STAMP)
	$(ENV) exec $(BIN)/python -m assets.ui -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

serve: $(STAMP)
	$(ENV) $(BIN)/bentoml serve bentos.service:Recommender --host 127.0.0.1 --port 3001

rollback: $(STAMP)
	$(ENV) $(BIN)/python -m vidrec.registry rollback

bento: $(STAMP)
	$(ENV) $(BIN)/bentoml build -f bentos/bentofile.yaml

# dvc.yaml stages call `python`, so the project's venv goes first on PATH; DVC runs from its own.
repro: $(STAMP) $(DVC_STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(DVC) repro && $(DVC) metrics show

clean:
	rm -rf .vidrec
