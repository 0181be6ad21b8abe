# The two set-up commands of the README: `make demo` (main job end to end) and `make test`.
# Both create .venv with pip on first use; nothing is downloaded outside the package registries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/synthetic

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "fdopa needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/fdopa synth --cohort adult --n 16 --grid tiny --dynamic-fraction 0.3 --seed 0 --out $(DATA)/adult-tiny --overwrite
	$(BIN)/fdopa synth --cohort paediatric --n 24 --grid tiny --dynamic-fraction 0.3 --seed 1 --out $(DATA)/paediatric-tiny --overwrite

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
