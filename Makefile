# Two commands: `make demo` (set up, run the demo) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test bench reference clean-runs

$(STAMP): requirements.txt requirements-common.txt requirements-dev.txt requirements-torch.txt requirements-openvino.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements-dev.txt -r requirements-torch.txt \
	  -r requirements-openvino.txt
	touch $(STAMP)

setup: $(STAMP)

# headless Chromium (Debian's package) for the report's browser test; needs root or sudo
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(BIN)/python run_pipeline.py demo

test: $(STAMP) browser
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/extract_throughput.py

# reference results on ../shared/data (BUSI, mini-MIAS) -> docs/results.md; WEIGHTS=imagenet|random|DIR
reference: $(STAMP)
	$(BIN)/python scripts/reference_results.py $(if $(WEIGHTS),--weights $(WEIGHTS))

clean-runs:
	rm -rf runs
