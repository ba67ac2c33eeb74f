# `make run` trains the default DNA model; `make test` runs the test suite.
# Both create .venv on first use (CPU build of torch first, so pip never pulls a CUDA build).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/biolm train dna

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check biolm tests benchmarks
	$(BIN)/ruff format --check biolm tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format biolm tests benchmarks
	$(BIN)/ruff check --fix biolm tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
