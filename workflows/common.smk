# Configuration, the grid of runs and shared helpers.  The logic lives in normlab.workflow (tested
# without Snakemake); this file only binds it to the workflow.
import re
import shutil
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

# The package comes from the workflow's own source tree, here and in every job (below: NORMLAB).
SRC = str(Path(workflow.basedir, "src").resolve())
sys.path.insert(0, SRC)

from normlab.analysis import contract
from normlab.analysis.captions import Captions
from normlab.provenance import resolved_sha256
from normlab.workflow import (
    PATHS,
    SITE_FILE,
    WorkflowConfigError,
    baseline_settings,
    check_gpu_partition,
    corpus_of,
    GPU_RULES,
    gpu_request,
    gpus,
    load,
    manifest_csv,
    norm_options_text,
    normlab_command,
    probe_command,
    python_imports_torch,
    resources,
    rule_resources,
    run_config_yaml,
    site_settings,
    started_in,
    slurm_resources,
    sweep_points_csv,
    train_command,
    with_absolute_data_cache,
)


# `--config from_tidy=true` (`make figures`): regenerate the statistics, paper tables, figures and
# notebooks from the configuration's committed tidy tables, with no run, probe or data in the DAG (the
# rules that write the tidy tables and the data-card table are left out; docs/workflow.md).  A way of
# running, not part of the configuration: taken out before the config is checked and hashed.
FROM_TIDY = str(config.pop("from_tidy", False)).lower() in ("true", "1", "yes")

# No `configfile:` directive: Snakemake would deep-merge --configfile over it, mixing two grids.
# Without --configfile the default configuration is read, with any --config values on top.
if "name" not in config:
    from normlab.train.config import merge

    _given = dict(config)
    config.clear()
    config.update(merge(yaml.safe_load(Path(workflow.basedir, "config/default.yaml").read_text()), _given))

RAW_CONFIG = dict(config)  # as given, before the data cache is made absolute (CONFIG_SHA256 below)

# A config with a `workdir` runs its jobs there: its data cache is made absolute first (for the run
# configs), relative to where the workflow was started (a SLURM job step starts inside the workdir).
START = started_in(Path.cwd(), config.get("workdir"))
config.update(with_absolute_data_cache(config, START))
try:
    CFG, CELLS, RUN_CONFIGS = load(config, Path(workflow.basedir, "workflows/schemas/config.schema.yaml"))
except WorkflowConfigError as err:
    raise WorkflowError(f"{err}\n(fix the workflow config; its schema is workflows/schemas/config.schema.yaml)")
# What the configuration resolves to, hashed as paper_tables/provenance.json's config.resolved_sha256
# (normlab.provenance): every figure carries it in its metadata.  Of the config as given, so that the
# hash does not depend on where the checkout is (the data cache made absolute above).
CONFIG_SHA256 = resolved_sha256(*load(RAW_CONFIG, Path(workflow.basedir, "workflows/schemas/config.schema.yaml"))[::2])

# A configuration may keep all its outputs in a folder of its own (config/scale.yaml: scale_study/) so
# that its tables and figures do not overwrite the default configuration's; the data cache stays shared.
if CFG.get("workdir") and START == Path.cwd():

    workdir: CFG["workdir"]


DATA_CACHE = CFG["data_cache"]
SWEEP = bool(CFG.get("sweep"))  # the scale study (config/scale.yaml): adds its points table, table and figures
DATASETS_USED = sorted({c.corpus for c in CELLS})  # registered datasets: what is fetched and prepared
SETTINGS_USED = sorted({c.dataset for c in CELLS})  # = DATASETS_USED, plus the sweep's points
GPUS = gpus(CFG)  # setting -> GPUs (= processes) of one of its training jobs
# Your SLURM site (account, partitions): slurm/site.yaml or NORMLAB_SLURM_* variables (docs/workflow.md)
try:
    SITE = site_settings(Path(workflow.basedir, SITE_FILE))
except WorkflowConfigError as err:
    raise WorkflowError(str(err))

# Every job runs `python -m normlab` from SRC with the `python` on PATH: the activated venv's (`make run`
# puts .venv/bin first on PATH; SLURM jobs inherit it) or the conda environment envs/normlab.yaml's
# (--software-deployment-method conda), which holds the dependencies and not the package.
NORMLAB = normlab_command(SRC)
USES_CONDA = "conda" in str(workflow.deployment_settings.deployment_method).lower()


if not USES_CONDA and not python_imports_torch(shutil.which("python"), sys.executable):
    raise WorkflowError(
        "the `python` on PATH cannot import torch, which every job needs: run `make run`, or "
        "`source .venv/bin/activate` first (`make venv` builds it), or use --software-deployment-method conda"
    )


def refuse_gpu_jobs_without_a_partition():
    """Under the SLURM executor, GPU jobs without a GPU partition would land in the default partition
    (often CPU-only): stop at start, naming the setting (called by the Snakefile's onstart)."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    gpu_jobs = sum(1 for job in workflow.dag.needrun_jobs() if job.rule.name in GPU_RULES
                   and gpu_request(job.rule.name, GPUS[job.wildcards.dataset]))
    try:
        check_gpu_partition(SITE, gpu_jobs)
    except WorkflowConfigError as err:
        raise WorkflowError(str(err)) from None


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


def threads_of(name):
    return resources(CFG, name)["threads"]


# the SLURM settings the site gives some job (slurm_partition, slurm_account)
SITE_KEYS = sorted(set(slurm_resources(SITE, 0)) | set(slurm_resources(SITE, 1)))


def job_resources(name):
    """The `resources:` of the rule called `name` (memory and runtime growing with the attempt; for the
    jobs that go to SLURM, the site's partition and account; the GPU rules ask for their setting's GPUs)."""
    out = rule_resources(CFG, name)
    if name in GPU_RULES:
        n_gpus = lambda wc: gpu_request(name, GPUS[wc.dataset])
        out["gpu"] = n_gpus
        for key in SITE_KEYS:
            out[key] = lambda wc, key=key: slurm_resources(SITE, n_gpus(wc)).get(key, "")
    else:
        out.update(slurm_resources(SITE, 0))
    return out


def launcher(wildcards):
    """How a training job starts normlab: one process, or torchrun with one process per GPU."""
    return normlab_command(SRC, max(GPUS[wildcards.dataset], 1))
