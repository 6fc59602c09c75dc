# Configuration, the grid of runs and shared helpers.  The logic lives in normlab.workflow (tested
# without Snakemake); this file only binds it to the workflow.
import re
import shutil
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

from normlab.analysis import contract
from normlab.workflow import (
    WorkflowConfigError,
    baseline_settings,
    corpus_of,
    load,
    manifest_csv,
    norm_options_text,
    resources,
    run_config_yaml,
    sweep_points_csv,
)


# No `configfile:` directive: Snakemake would deep-merge --configfile over it, mixing two grids.
# Without --configfile the default configuration is read, with any --config values on top.
if "name" not in config:
    from normlab.train.config import merge

    _given = dict(config)
    config.clear()
    config.update(merge(yaml.safe_load(Path(workflow.basedir, "config/default.yaml").read_text()), _given))

try:
    CFG, CELLS, RUN_CONFIGS = load(config, Path(workflow.basedir, "workflows/schemas/config.schema.yaml"))
except WorkflowConfigError as err:
    raise WorkflowError(f"{err}\n(fix the workflow config; its schema is workflows/schemas/config.schema.yaml)")

# A configuration may keep all its outputs in a folder of its own (config/scale.yaml: scale_study/) so
# that its tables and figures do not overwrite the default configuration's; the data cache stays shared.
if CFG.get("workdir"):
    CFG["data_cache"] = str(Path(CFG["data_cache"]).resolve())

    workdir: CFG["workdir"]


DATA_CACHE = CFG["data_cache"]
SWEEP = bool(CFG.get("sweep"))  # the scale study (config/scale.yaml): adds its points table, table and figures
DATASETS_USED = sorted({c.corpus for c in CELLS})  # registered datasets: what is fetched and prepared
SETTINGS_USED = sorted({c.dataset for c in CELLS})  # = DATASETS_USED, plus the sweep's points
# Jobs call the `normlab` command: from the activated venv (`make run` puts .venv/bin first on PATH;
# SLURM jobs inherit it) or from the conda environment envs/normlab.yaml (--sdm conda).
if shutil.which("normlab") is None and "conda" not in str(workflow.deployment_settings.deployment_method).lower():
    raise WorkflowError(
        "the `normlab` command is not on PATH: run `make run`, or `source .venv/bin/activate` first "
        "(`make venv` builds it), or use --software-deployment-method conda"
    )

RUN_DIR = "results/runs/{dataset}/{placement}/{norm}/seed{seed}"
PROBE_DIR = "results/probes/{dataset}/{placement}/{norm}/seed{seed}"
TRAIN_BENCHMARK = "results/benchmarks/train/{dataset}/{placement}/{norm}/seed{seed}.tsv"


wildcard_constraints:
    dataset="|".join(re.escape(name) for name in sorted(set(DATASETS_USED) | set(SETTINGS_USED))),
    placement="post|pre",
    norm="|".join(sorted({c.norm for c in CELLS}, key=len, reverse=True)),
    seed=r"\d+",


def per_run(pattern):
    """`pattern` for every cell of the grid."""
    return [pattern.format(**c.wildcards) for c in CELLS]


def prepared_card(wildcards):
    """The prepared data card of a cell's corpus (a sweep setting reads its dataset's data)."""
    return f"{DATA_CACHE}/prepared/{corpus_of(wildcards.dataset)}/card.json"


def cell_id(wildcards):
    return f"{wildcards.dataset}/{wildcards.placement}/{wildcards.norm}/seed{wildcards.seed}"


def rule_resources(rule):
    return resources(CFG, rule)
