# The two set-up commands of the README: `make demo` (main job end to end) and `make test`.
# Both create .venv with pip on first use; nothing is downloaded outside the package registries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

# pip compiles the bytecode on one core; compileall uses them all (the install 187 → 163 s on
# 2 cores). A few files of the stack are for other Pythons and do not compile, which pip
# ignores too: hence `|| true`.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "fdopa needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile -c constraints.txt -e '.[all,dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	touch $@

install: $(VENV)/.installed

# The synthetic cohorts are generated into data/synthetic/ on first use (cached after). A
# training step gains little from a second core (4 × 32³ patches: 0.68 s on one thread, 0.56 s
# on two), so the pretraining runs on one thread while the other core generates the
# fine-tuning cohort.
SYNTH_LOG := runs/paediatric-cohort.log
demo: install
	$(BIN)/python train.py +experiment=pretrain data_only=true
	@mkdir -p runs && echo "generating the fine-tuning cohort beside the pretraining (log: $(SYNTH_LOG))"
	OMP_NUM_THREADS=1 $(BIN)/python train.py +experiment=finetune data_only=true \
	    data.synth_jobs=1 > $(SYNTH_LOG) 2>&1 & synth=$$!; \
	trap 'kill $$synth 2>/dev/null; exit 130' INT TERM; \
	OMP_NUM_THREADS=1 $(BIN)/python train.py +experiment=pretrain; trained=$$?; \
	wait $$synth || { echo "generating the fine-tuning cohort failed: see $(SYNTH_LOG)"; exit 2; }; \
	exit $$trained
	$(BIN)/python train.py +experiment=finetune

# One pytest-xdist worker per core, each torch on one thread (two threads a worker would stall
# each other); a test file stays on one worker, so its module fixtures are built once.
TEST_WORKERS ?= 2
test: install
	OMP_NUM_THREADS=1 $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
