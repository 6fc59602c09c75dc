# normlab: one-command set-up.  `make test` builds .venv from nothing and runs the fast tests;
# `make run` runs the main job on the default configuration.
PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PYTEST_ARGS ?=

# Which torch build (docs/install.md).  TORCH_INDEX names the wheel index torch comes from:
#   cpu            PyTorch's CPU index (default on Linux): a CPU build of ~200 MB, not PyPI's Linux wheel,
#                  which is a CUDA build of several GB.  Where that index cannot be reached (CI, offline
#                  machines), pip takes a local wheel from its find-links (here /opt/wheels) or fails.
#   cu126, cu128, cu130, ...   PyTorch's index for that CUDA version (GPU clusters; match the driver)
#   pypi           PyPI's own wheel (default on macOS, where it is the CPU/MPS build; on Linux x86_64 a
#                  CUDA 13 build).  GPU=1 is short for TORCH_INDEX=pypi.
# The version is requirements/torch.txt's; TORCH_SPEC and TORCH_PIP_ARGS override both.
GPU         ?=
TORCH_INDEX ?= $(if $(GPU),pypi,$(if $(filter Darwin,$(shell uname -s)),pypi,cpu))
TORCH_SPEC  ?= $(shell grep -m1 '^torch==' requirements/torch.txt)
TORCH_PIP_ARGS ?= $(if $(filter pypi,$(TORCH_INDEX)),,--index-url https://download.pytorch.org/whl/$(TORCH_INDEX))

.PHONY: venv lock conda-env test test-slow test-all lint bench run figures clean-venv

venv: $(VENV)/.installed

# The lock first (exact versions, hash-checked, no resolution), then torch from its index (its
# dependencies are already there, so only torch and, for a CUDA build, its CUDA libraries come in),
# then normlab itself, editable; `pip check` confirms that nothing is missing or at odds.
$(VENV)/.installed: pyproject.toml requirements/lock.txt requirements/torch.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/lock.txt
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS) \
	  || { echo "make venv: could not install $(TORCH_SPEC) from TORCH_INDEX=$(TORCH_INDEX); see docs/install.md" >&2; exit 1; }
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	$(PY) -c "import torch, normlab; print('normlab', normlab.__version__, 'torch', torch.__version__, \
	  'CUDA ' + torch.version.cuda if torch.version.cuda else '(CPU build)')"
	touch $@

# Regenerate requirements/lock.txt (tools/lock.sh; UPGRADE=1 for the newest releases) and, from it,
# envs/normlab.yaml.  Needs PyPI.
lock:
	UPGRADE=$(UPGRADE) bash tools/lock.sh
	$(PYTHON) tools/conda_env.py

# envs/normlab.yaml from the lock (tools/conda_env.py); `make lock` does this too.
conda-env:
	$(PYTHON) tools/conda_env.py

# The fast suite (< 10 min on 2 cores).
test: venv
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

# Long end-to-end checks (.ci/run runs these too).
test-slow: venv
	$(PY) -m pytest -m "slow" $(PYTEST_ARGS) || [ $$? -eq 5 ]   # 5 = no slow test collected

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks notebooks tools

bench: venv
	$(PY) benchmarks/bench_norms.py

# The main job: the whole default DAG (config/default.yaml), data fetch included.
# Another configuration: make run CONFIG=config/test.yaml; targets or other Snakemake arguments:
# SNAKEMAKE_ARGS="...", which go before --configfile (Snakemake reads every word after --configfile as a
# config file, targets included).
# After a run that regenerated the outputs, paper_tables/provenance.json records commit, config hash,
# machine, date and wall time (normlab provenance).
CONFIG ?= config/default.yaml
CORES ?= $(shell nproc)
SNAKEMAKE_ARGS ?=
run: venv
	@started=$$(date +%s); \
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake $(SNAKEMAKE_ARGS) --cores $(CORES) --rerun-incomplete --configfile $(CONFIG) \
	&& $(VENV)/bin/normlab provenance --config $(CONFIG) --started $$started --cores $(CORES)

# Every statistic, paper table, figure and executed notebook of a configuration, regenerated from its
# committed tidy tables (results/tidy under its workdir): no training, no data, no run folders; the same
# DAG with `--config from_tidy=true`, every job of it forced.  paper_tables/provenance.json (the runs')
# is left as it is; each figure carries the commit that drew it (docs/workflow.md).  The scale study:
#   make figures CONFIG="config/scale.yaml config/scale_seed1.yaml"
figures: venv
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake $(SNAKEMAKE_ARGS) --cores $(CORES) --forceall \
	  --config from_tidy=true --configfile $(CONFIG)

clean-venv:
	rm -rf $(VENV)
