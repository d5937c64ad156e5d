# Quickstart targets. Each creates ./.venv on first use (Python >= 3.10), then runs.
#   make example     compare the bundled example images with ST-LPIPS and LPIPS (alex, vgg)
#   make test        run the whole test-suite (what CI runs)
#   make test-fast   the quick tier: parity on the bundled example, the API, one gradient per
#                    model, CLI smoke (tests marked `fast`)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LPIPS_WHEEL := .cache/wheels/lpips-0.1.4-py3-none-any.whl

.PHONY: example test test-fast install

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The lpips wheel ships LPIPS v0.1 head files that the tests read (its torch dependency is
# never installed: --no-deps).
$(LPIPS_WHEEL): | $(STAMP)
	$(BIN)/python -m pip download -q --no-deps lpips==0.1.4 -d .cache/wheels

example: $(STAMP)
	$(BIN)/shiftlpips example

test: $(STAMP) $(LPIPS_WHEEL)
	SHIFTLPIPS_TEST_LPIPS_WHEEL=$(LPIPS_WHEEL) $(BIN)/python -m pytest -q -n 2

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m fast
