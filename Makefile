# atomlens: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/mp_crystals_36k.extxyz
# torch is installed before the package (which asks only torch>=2.3), so that pip keeps this
# build (the CPU wheel where pip is set up for it) instead of pulling CUDA libraries.
TORCH ?= torch==2.13.0

.PHONY: demo test test-all lint bench clean browser

# The viewer tests drive Debian's chromium headless; install it when it is missing.
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/atomlens demo

browser:
ifeq ($(CHROMIUM),)
	-$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		chromium chromium-driver >/dev/null || echo "could not install chromium: viewer tests skip"
endif

# pytest exits 5 when it collects no test; that is not a failure of the set-up.
test: $(STAMP) browser
	$(PY) -m pytest -q; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: $(STAMP) browser
	$(PY) -m pytest -q -m ""; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/bench_graphs.py --crystals $(DATA)
	$(PY) benchmarks/bench_memory.py
	$(PY) benchmarks/bench_spins.py throughput

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
