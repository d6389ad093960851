# Set-up and everyday commands. Each target installs what it needs into .venv.
#   make quickstart   install, run the quickstart study, analyze it, verify its answer at 793k (2 CPU cores)
#   make test         install, then ruff, pyright and the whole test suite (what CI runs)
#   make test-fast    the suite without the slow end-to-end tests
#   make findings     run the four question studies (about 30 min on 2 cores), write docs/findings.md
PYTHON ?= python3
VENV ?= .venv
# A CPU wheel on these machines; override for a CUDA build, e.g.
#   make TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

FINDINGS ?= weight_decay batch_size learning_rate lr_width_crossover

.PHONY: install quickstart test test-fast lint clean findings

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

quickstart: install
	$(BIN)/hpo run studies/quickstart.yaml
	$(BIN)/hpo analyze studies/quickstart.yaml --plots runs/quickstart/plots
	$(BIN)/hpo verify studies/quickstart.yaml --scale 793k

findings: install
	for study in $(FINDINGS); do nice -n 5 $(BIN)/hpo run studies/$$study.yaml || exit 1; done
	$(BIN)/python docs/findings.py --studies $(shell echo $(FINDINGS) | tr ' ' ',')

lint: install
	$(BIN)/ruff check .
	$(BIN)/pyright

test: lint
	$(BIN)/python -m pytest

test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
