# The two commands: `make demo` runs the demo study end to end, `make test` runs the tests.
# Both create .venv on first use and install the package (CPU torch pinned in the same
# pip resolution as everything else, so pip never pulls a second torch).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= $(shell nproc)
SNAKEMAKE := $(BIN)/snakemake --profile profiles/local --cores $(CORES)

.PHONY: demo test lint clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The two demo studies: images (config/config.yaml) then movies (config/demo_movies.yaml).
demo: $(STAMP)
	$(SNAKEMAKE)
	$(SNAKEMAKE) --report results/demo/report.html
	$(SNAKEMAKE) --configfile config/demo_movies.yaml
	$(SNAKEMAKE) --configfile config/demo_movies.yaml --report results/demo_movies/report.html

test: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/ruff check src tests workflow/scripts benchmarks
	$(BIN)/ruff format --check src tests workflow/scripts benchmarks
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf results/demo resources/demo logs/demo results/demo_movies resources/demo_movies logs/demo_movies
