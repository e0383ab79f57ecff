# The two commands: `make demo` runs the demo study end to end, `make test` runs the tests.
# Both create .venv on first use and install the package with every extra, at the exact
# versions of constraints.txt (torch included) in one pip resolution, so pip never pulls a
# second torch. TORCH_INDEX: the wheel index PyTorch's install page gives for your CUDA
# version, for a CUDA build of torch (default: the build your package index has).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= $(shell nproc)
SNAKEMAKE := $(BIN)/snakemake --profile profiles/local --cores $(CORES)
PINS   := constraints.txt
EXTRAS := dev,video,sklearn
TORCH_INDEX ?=

.PHONY: demo test lint envs config-reference clean-demo

$(STAMP): pyproject.toml $(PINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(PINS) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) \
	    -e ".[$(EXTRAS)]"
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
	$(BIN)/ruff check src tests workflow/scripts benchmarks envs
	$(BIN)/ruff format --check src tests workflow/scripts benchmarks envs
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint

# The rules' conda environments (envs/*.yaml), written from constraints.txt.
envs:
	$(PYTHON) envs/generate.py

# config/README.md, the config reference, written from workflow/schemas/ (a test checks it).
config-reference: $(STAMP)
	$(BIN)/encscale-config-reference -o config/README.md

clean-demo:
	rm -rf results/demo resources/demo logs/demo results/demo_movies resources/demo_movies logs/demo_movies
