# callcycle — the first two targets are the quick start (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
OUT    ?= out

.PHONY: run test test-slow test-all bench spoken-calls train train-boundaries train-roles cross-writer samples lint typecheck wheel-check clean help

run: $(STAMP) ## Score the bundled sample calls in data/calls into $(OUT)/ and print the summary
	$(VENV)/bin/callcycle run data/calls --out $(OUT)

test: $(DEVSTAMP) ## Run the default test suite (slow tests excluded)
	$(PY) -m pytest -m "not slow" -q --durations=10

test-slow: $(DEVSTAMP) ## Run only the slow tests
	$(PY) -m pytest -m slow -q --durations=5 || [ $$? -eq 5 ]

test-all: $(DEVSTAMP) ## Run every test
	$(PY) -m pytest -q

bench: $(STAMP) ## Time the flow against plain and batched faster-whisper on the generated bench calls (needs espeak-ng)
	$(PY) scripts/bench.py --out bench-out --prefect-server

spoken-calls: $(STAMP) ## Score the 28 labelled calls spoken by espeak-ng and recognised, against their gold scores, with the current model (about 4 minutes; needs espeak-ng)
	$(PY) scripts/eval_spoken_calls.py

train: $(STAMP) ## Retrain the classifiers from labels/ and promote if held-out macro-F1 does not drop
	$(VENV)/bin/callcycle train --promote

cross-writer: $(STAMP) ## Leave-one-writer-out for the current model: retrains its recipe once per writer (about 2 h on 2 cores); writes models/<version>/cross_writer.json (partial until every writer is in; a rerun continues) and the card's section
	$(PY) scripts/cross_writer.py

train-boundaries: $(STAMP) ## Retrain the sentence-boundary model for unpunctuated turns into models/boundaries/ and print its card (about half a minute)
	$(PY) scripts/train_boundaries.py

train-roles: $(STAMP) ## Retrain the role model (who is the rep) into models/roles/ and print its card (about a minute)
	$(PY) scripts/train_roles.py

samples: $(STAMP) ## Regenerate the sample calls (needs espeak-ng)
	$(PY) data/make_samples.py

lint: $(DEVSTAMP) ## ruff over the code, CLI, flows, tests and scripts
	$(VENV)/bin/ruff check pipeline flows cli tests scripts setup.py

typecheck: $(DEVSTAMP) ## mypy over the library and the CLI
	$(VENV)/bin/mypy pipeline cli

wheel-check: ## Build the wheel, install it in a clean venv, score a transcript from another folder
	scripts/check_wheel.sh

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(PY) -m pip install -q -e .
	@touch $@

$(DEVSTAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,asr-base]"
	@touch $@

clean:
	rm -rf $(OUT) bench-out .pytest_cache

help:
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
