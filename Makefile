# Two entry points, both usable on a fresh machine (see README.md):
#   make demo   sets up .venv and runs the main job (crossrank demo)
#   make test   sets up .venv and runs ruff and the whole test suite
#   make docs   builds the docs site (mkdocs.yml, docs/) with warnings as errors (CI runs it)
#   make dist   builds, checks, installs and smoke-tests the three packages (CI runs it)
# Each integration package under integrations/ is installed editable with its `test` dependency
# group, and the core with its `dev` group (PEP 735 groups: `pip install --group`, pip >= 25.1;
# setup upgrades pip first). The dev install pins torch to the CPU build through
# constraints.txt; the packages' own dependency ranges stay wide.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INTEGRATIONS := $(wildcard integrations/*/pyproject.toml)

.PHONY: setup demo test lint infinity bench dist docs

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(INTEGRATIONS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt -e . --group dev \
		$(foreach p,$(INTEGRATIONS),-e "$(dir $(p))" --group "$(p):test")
	touch $(STAMP)

# infinity-emb (a serving engine) in its own venv, .venv-infinity: its pins differ from ours.
# The end-to-end test runs this itself; `make infinity` does it ahead of time.
infinity:
	bash scripts/setup_infinity.sh

demo: setup
	$(BIN)/crossrank demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

# Release check: three wheels and sdists in dist/, twine check, then a fresh venv with only the
# wheels (and their dependencies) installed, and a smoke rerank through each package.
dist: setup
	PYTHON=$(BIN)/python bash scripts/release_check.sh

# The speed benchmark (not a test): its own .venv-bench with the peer libraries; see README.
bench:
	benchmarks/run.sh

# The docs site into site/, strict: a broken link, a page missing from nav or an API reference
# that does not resolve fails the build. `$(BIN)/mkdocs serve` shows it while you edit.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
