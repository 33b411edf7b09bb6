# Two commands on a fresh machine: `make reproduce` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
CONFIG ?= config/config.yaml
EXTRAS := dev
ifeq ($(GPU),1)
EXTRAS := dev,gpu
endif

export MUJOCO_GL ?= egl
# Workflow rules call `sorlab`: the venv's bin/ first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONWARNINGS ?= ignore

.PHONY: venv reproduce test lint format bench clean-results test-slurm record-fixtures

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

reproduce: venv
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --workflow-profile workflow/profiles/default

test: venv
	$(BIN)/pytest -q tests

lint: venv
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/snakemake --lint

format: venv
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

# A one-node SLURM cluster on this machine (root; installs slurm-wlm, munge, mariadb-server),
# the tiny study through workflow/profiles/slurm, compared with a local run (docs/cluster.md).
test-slurm: venv
	SORLAB_SLURM_TEST=1 $(BIN)/pytest -q -s tests/slurm

# Equivalence fixtures from the authors' released code (docs/equivalence.md): checkouts of
# nico-espinosadice/SORL and seohongpark/fql, and the python of a venv with THEIR pins.
SORL_REPO ?=
FQL_REPO ?=
REF_PYTHON ?=
record-fixtures:
	@test -n "$(SORL_REPO)" -a -n "$(FQL_REPO)" -a -n "$(REF_PYTHON)" || { echo "record-fixtures: set SORL_REPO=<SORL checkout> FQL_REPO=<fql checkout> REF_PYTHON=<python with the released pins> (docs/equivalence.md)"; exit 2; }
	JAX_PLATFORMS=cpu $(REF_PYTHON) scripts/reference/record.py --sorl-repo $(SORL_REPO) --fql-repo $(FQL_REPO) --out tests/fixtures/equivalence

bench: venv
	$(BIN)/python benchmarks/run.py

clean-results:
	rm -rf results paper_figures .snakemake
