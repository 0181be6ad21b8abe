# The two set-up commands of the README: `make demo` (main job end to end) and `make test`.
# Both create .venv with pip on first use; nothing is downloaded outside the package registries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "fdopa needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $@

install: $(VENV)/.installed

# The synthetic cohorts are generated into data/synthetic/ on first use by the data module.
demo: install
	$(BIN)/python train.py +experiment=pretrain
	$(BIN)/python train.py +experiment=finetune

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
