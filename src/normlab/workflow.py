"""The workflow configuration: schema check, the grid of runs, and the run config of each cell.

The Snakefile calls :func:`load` once at parse time; everything the rules need (the cells, each
cell's run config, the manifest, per-rule resources) comes from here, so it is tested without
Snakemake.  A configuration (``config/*.yaml``) has:

* ``datasets``: per dataset, the run-config sections (``model``, ``optim``, ``train``, ``eval``),
  ``data_options`` and ``norm_options``; the task comes from the dataset registry;
  an entry named ``<dataset>.<variant>`` is a *variant* of a configured dataset: that dataset's entry
  with the variant's sections merged over it, run under its own name (another recipe for the same
  data, e.g. the LN family's IWSLT14 recipe beside the RBN one); a variant is a setting like a sweep
  point (its name takes the dataset's place in run ids and paths);
* ``grids``: named blocks, each a cross product datasets × placements × norms × seeds; the runs are
  the union (a cell in two blocks is one run, listed under both);
* ``run_defaults`` (applied first), ``norm_options`` (per norm, ``all``/``post``/``pre``) and
  ``overrides`` (single cells, applied last, each with a reason);
* ``datasets.NAME.gpus`` (default 1): the GPUs of one training job of that dataset, one process per
  GPU (``torchrun --standalone --nproc_per_node N`` when N > 1); 0 runs it on the CPU partition
  without one.  Without CUDA the N processes run on the CPU (gloo), which is how the tests run DDP;
* ``resources``: threads, memory and runtime per rule; memory and runtime grow with each retry
  (:func:`rule_resources`);
* ``sweep`` (optional; the scale study, ``config/scale.yaml``): one factor at a time around a base
  point.  Each factor lists its levels in order, each level a patch of run sections (and
  ``data_options``, ``placement``); the one level with an empty patch is the base point.  Every level
  of every swept dataset becomes a *setting* named ``<dataset>.<factor>-<level>`` (the base point:
  ``<dataset>.base``, shared by all factors), and a setting takes the place of the dataset in run ids
  and paths, so every downstream stage treats a point like a dataset.  ``sweep_points_csv`` says
  which setting is which point.

Every problem is reported before any job runs: the schema check names the key and the valid values,
and every cell's run config is validated by :mod:`normlab.train.config`, so a cell a model cannot run
fails at parse time with the cell's id.  Where a cell's dataset is already prepared, its data card
also checks what depends on the data (:mod:`normlab.train.fit`: the ViT patch size divides the image,
the token budget holds the longest example); otherwise the job checks it at its start.
"""

from __future__ import annotations

import copy
import csv
import inspect
import io
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import jsonschema
import yaml

from normlab.analysis import options as analysis_options
from normlab.analysis.contract import BASELINE_METRIC, MANIFEST_COLUMNS
from normlab.data import DATASETS
from normlab.data import card as data_card
from normlab.metrics import HIGHER_IS_BETTER
from normlab.norms import NORMS, BatchStatNorm
from normlab.train import fit
from normlab.train.config import ConfigError, describe_error, merge, validate
from normlab.train.tasks import NORMLAB_DATA_OPTIONS

PLACEMENTS = ("post", "pre")


class WorkflowConfigError(ValueError):
    """A workflow configuration that cannot run; the message names the key or cell and the fix."""


@dataclass(frozen=True)
class Cell:
    """One run of the grid.  ``dataset`` is a registered dataset, or in a sweep a setting of one
    (``bible_es_en.depth-8``); ``corpus`` is the registered dataset either way."""

    dataset: str
    placement: str
    norm: str
    seed: int
    grids: tuple[str, ...] = field(default=(), compare=False)

    @property
    def corpus(self) -> str:
        return corpus_of(self.dataset)

    @property
    def run_id(self) -> str:
        return f"{self.dataset}/{self.placement}/{self.norm}/seed{self.seed}"

    @property
    def wildcards(self) -> dict:
        return {"dataset": self.dataset, "placement": self.placement, "norm": self.norm, "seed": self.seed}


CELL_PATH = "{dataset}/{placement}/{norm}/seed{seed}"


@dataclass(frozen=True)
class Paths:
    """Where every stage writes, relative to the workflow's working directory: the one definition the
    rules, the manifest, ``tools/run_cells.py`` and the tests use.  A cell's patterns hold its wildcards
    in braces (:meth:`of` fills them in)."""

    config: str = f"results/configs/{CELL_PATH}.yaml"
    run_dir: str = f"results/runs/{CELL_PATH}"
    probe_dir: str = f"results/probes/{CELL_PATH}"
    benchmark: str = f"results/benchmarks/train/{CELL_PATH}.tsv"
    config_log: str = f"logs/configs/{CELL_PATH}.log"
    train_log: str = f"logs/train/{CELL_PATH}.log"
    probe_log: str = f"logs/probe/{CELL_PATH}.log"
    manifest: str = "results/manifest.csv"
    tidy: str = "results/tidy"
    stats: str = "results/stats"
    # the cell paths the manifest lists (docs/analysis_contract.md §2): the analysis finds a cell's files there
    MANIFEST_KEYS: ClassVar[tuple[str, ...]] = ("run_dir", "probe_dir", "benchmark")

    def of(self, key: str, cell: Cell) -> str:
        """The ``key`` path of one cell."""
        return getattr(self, key).format(**cell.wildcards)

    def manifest_patterns(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in self.MANIFEST_KEYS}


PATHS = Paths()

SWEEP_GRID = "sweep"
LEVEL_LABEL = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$")
VARIANT_LABEL = re.compile(r"^[a-z0-9_][a-z0-9_.+-]*$")


def corpus_of(setting: str) -> str:
    """The registered dataset of a setting name (``bible_es_en.depth-8`` -> ``bible_es_en``)."""
    return setting.split(".", 1)[0]


def setting_name(dataset: str, factor: str, label: str, patch: dict) -> str:
    return f"{dataset}.base" if not patch else f"{dataset}.{factor}-{label}"


def sweep_points(cfg: dict) -> list[dict]:
    """One row per dataset x factor x level of the sweep (empty without one), in the configured order."""
    sweep = cfg.get("sweep")
    if not sweep:
        return []
    rows = []
    for factor, spec in sweep["factors"].items():
        for dataset in spec.get("datasets", sweep["datasets"]):
            for rank, (label, patch) in enumerate(spec["levels"].items()):
                label = str(label)
                try:
                    value = float(label)
                except ValueError:
                    value = None
                rows.append({
                    "setting": setting_name(dataset, factor, label, patch), "corpus": dataset, "factor": factor,
                    "level": label, "level_value": value, "level_rank": rank, "is_base": not patch,
                    "placement": patch.get("placement", sweep["placement"]), "patch": patch,
                })
    return rows


def _check_sweep(cfg: dict) -> None:
    sweep = cfg["sweep"]
    for dataset in sweep["datasets"]:
        if dataset not in cfg["datasets"]:
            raise WorkflowConfigError(f"sweep.datasets: {dataset} has no entry under `datasets` (its base point)")
    for factor, spec in sweep["factors"].items():
        where = f"sweep.factors.{factor}"
        extra = [d for d in spec.get("datasets", []) if d not in sweep["datasets"]]
        if extra:
            raise WorkflowConfigError(f"{where}.datasets: {', '.join(extra)} not in sweep.datasets")
        bases = [str(label) for label, patch in spec["levels"].items() if not patch]
        if len(bases) != 1:
            raise WorkflowConfigError(
                f"{where}.levels: exactly one level must be the base point (an empty patch {{}}); found "
                f"{len(bases)} ({', '.join(bases) or 'none'})"
            )
        bad = [str(label) for label in spec["levels"] if not LEVEL_LABEL.match(str(label))]
        if bad:
            raise WorkflowConfigError(f"{where}.levels: labels {bad} must be letters, digits, '_', '.', '+', '-'")


def variants(datasets: dict) -> list[str]:
    """The variant entries (``<dataset>.<variant>``) of a ``datasets`` section."""
    return [name for name in datasets if "." in name]


def _check_variants(cfg: dict) -> None:
    points = {p["setting"] for p in sweep_points(cfg)}
    for name in variants(cfg["datasets"]):
        base, label = name.split(".", 1)
        if base not in cfg["datasets"]:
            raise WorkflowConfigError(
                f"datasets.{name}: a variant of {base}, which has no entry under `datasets` (the variant's base)"
            )
        if not VARIANT_LABEL.match(label):
            raise WorkflowConfigError(f"datasets.{name}: the variant label {label!r} must be lower-case letters, "
                                      "digits, '_', '.', '+', '-'")
        if name in points:
            raise WorkflowConfigError(f"datasets.{name}: the same name as a point of the sweep; rename the variant")
    in_sweep = [d for d in (cfg.get("sweep") or {}).get("datasets", []) if "." in d]
    if in_sweep:
        raise WorkflowConfigError(f"sweep.datasets: {', '.join(in_sweep)} are variants; sweep their base dataset")


def _with_variant_names(schema: dict, config: dict) -> dict:
    """The schema with the config's variants of registered datasets added to the dataset names."""
    names = [n for n in variants(config.get("datasets") or {}) if corpus_of(n) in DATASETS]
    if not names:
        return schema
    schema = copy.deepcopy(schema)
    schema["$defs"]["dataset_name"] = {"enum": [*schema["$defs"]["dataset_name"]["enum"], *names]}
    return schema


def settings(cfg: dict) -> dict[str, dict]:
    """Setting name -> its dataset entry: every configured dataset as itself, each variant as its base
    entry with the variant merged over it, plus each sweep point (the dataset's entry with the level's
    patch merged in; ``placement`` stays out of the entry)."""
    out = {
        name: merge(cfg["datasets"][corpus_of(name)], entry) if "." in name else entry
        for name, entry in cfg["datasets"].items()
    }
    for point in sweep_points(cfg):
        patch = {k: v for k, v in point["patch"].items() if k != "placement"}
        out[point["setting"]] = merge(cfg["datasets"][point["corpus"]], patch)
    return out


def load_schema(path: str | Path) -> dict:
    """The JSON schema with the registries' dataset and norm names filled in."""
    schema = yaml.safe_load(Path(path).read_text())
    schema["$defs"]["dataset_name"] = {"enum": list(DATASETS)}
    schema["$defs"]["norm_name"] = {"enum": list(NORMS)}
    # the options of normlab.train (which family takes which: checked per cell); the cache is data_cache
    options = {name: value for name, value in NORMLAB_DATA_OPTIONS.items() if name != "cache"}
    schema["$defs"]["data_options"] = {"type": "object", "additionalProperties": False, "properties": options}
    # analysis: a margin for any metric with a direction; a learning bar for a metric some baseline measures
    schema["$defs"]["margin_metric"] = {"enum": list(HIGHER_IS_BETTER)}
    schema["$defs"]["baseline_metric"] = {"enum": sorted(set(BASELINE_METRIC.values()))}
    schema["$defs"]["baseline_name"] = {"enum": list(BASELINE_METRIC)}
    return schema


def check(config: dict, schema: dict) -> dict:
    """Schema-check a workflow config and fill the defaults; raises WorkflowConfigError."""
    if not isinstance(config, dict):
        raise WorkflowConfigError("a workflow config is a mapping; see config/default.yaml")
    schema = _with_variant_names(schema, config)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise WorkflowConfigError("invalid workflow config: " + "; ".join(describe_error(e) for e in errors))
    cfg = copy.deepcopy(config)
    cfg.setdefault("data_cache", "data_cache")
    cfg.setdefault("run_defaults", {})
    cfg.setdefault("norm_options", {})
    cfg.setdefault("overrides", [])
    cfg["analysis"] = {"probe_mode": "train", "probe_batches": 16, "probe_population_tokens": 1_000_000,
                       **cfg.get("analysis", {})}
    # the analysis defaults (margins, learning bars, TID summary and windows): normlab.analysis.options
    cfg["analysis"] = analysis_options.with_defaults(cfg["analysis"])
    for metric, bar in cfg["analysis"]["learning_bars"].items():
        if BASELINE_METRIC.get(bar.get("baseline")) != metric:
            valid = [k for k, m in BASELINE_METRIC.items() if m == metric]
            raise WorkflowConfigError(f"analysis.learning_bars.{metric}.baseline: {bar.get('baseline')!r} is not "
                                      f"measured in {metric}; valid: {', '.join(valid)}")
    cfg.setdefault("resources", {})
    cfg.setdefault("grids", {})
    if not cfg["grids"] and not cfg.get("sweep"):
        raise WorkflowConfigError("a workflow config needs `grids` or a `sweep` (or both); see config/default.yaml")
    if cfg.get("sweep"):
        _check_sweep(cfg)
    _check_variants(cfg)
    for name, grid in cfg["grids"].items():
        unknown = [d for d in grid["datasets"] if d not in cfg["datasets"]]
        if unknown:
            raise WorkflowConfigError(
                f"grids.{name}.datasets: {', '.join(unknown)} not configured under `datasets`; "
                f"configured: {', '.join(cfg['datasets'])}"
            )
    return cfg


def cells(cfg: dict) -> list[Cell]:
    """The union of the grids, in a stable order; each cell lists the grids it belongs to."""
    found: dict[tuple, list[str]] = {}
    for name, grid in cfg["grids"].items():
        for dataset in grid["datasets"]:
            for placement in grid["placements"]:
                for norm in grid["norms"]:
                    for seed in grid.get("seeds", cfg["seeds"]):
                        found.setdefault((dataset, placement, norm, seed), []).append(name)
    sweep = cfg.get("sweep")
    for point in sweep_points(cfg):
        for norm in sweep["norms"]:
            for seed in sweep.get("seeds", cfg["seeds"]):
                names = found.setdefault((point["setting"], point["placement"], norm, seed), [])
                if SWEEP_GRID not in names:
                    names.append(SWEEP_GRID)
    return [Cell(*key, grids=tuple(names)) for key, names in found.items()]


def _norm_options(section: dict, norm: str, placement: str) -> dict:
    opts = section.get(norm, {})
    return merge(opts.get("all", {}), opts.get(placement, {}))


def run_config(cfg: dict, cell: Cell, entries: dict[str, dict] | None = None) -> dict:
    """The run config (normlab.train) of one cell, not yet validated (``entries``: ``settings(cfg)``,
    when the caller has it already)."""
    entry = (entries if entries is not None else settings(cfg))[cell.dataset]
    run = merge(cfg["run_defaults"], {k: entry[k] for k in ("model", "optim", "train", "eval") if k in entry})
    run["task"] = DATASETS[cell.corpus].family
    run["seed"] = cell.seed
    run["data"] = {
        "source": "normlab",
        "name": cell.corpus,
        "options": {"cache": cfg["data_cache"], **entry.get("data_options", {})},
    }
    model = run.setdefault("model", {})
    model["norm"], model["placement"] = cell.norm, cell.placement
    model["norm_options"] = merge(
        _norm_options(cfg["norm_options"], cell.norm, cell.placement),
        _norm_options(entry.get("norm_options", {}), cell.norm, cell.placement),
    )
    for override in cfg["overrides"]:
        # `where: {dataset: X}` is the grid's cell of dataset X, not its sweep settings (X.factor-level)
        if all(getattr(cell, key) == value for key, value in override["where"].items()):
            run = merge(run, override["set"])
    return run


def prepared_cards(cfg: dict, corpora) -> dict[str, dict]:
    """The data cards of the ``corpora`` already prepared in the config's data cache."""
    cards = {}
    for name in sorted(set(corpora)):
        try:
            cards[name] = data_card(name, cfg["data_cache"])
        except (FileNotFoundError, ValueError):  # not prepared yet (or a card being rewritten): the job checks
            continue
    return cards


def validated_run_configs(cfg: dict) -> dict[str, dict]:
    """run_id -> validated run config for every cell, checked against its dataset's data card where the
    dataset is prepared; the first bad cell raises, named."""
    out, entries, cell_list = {}, settings(cfg), cells(cfg)
    cards = prepared_cards(cfg, (c.corpus for c in cell_list))
    for cell in cell_list:
        try:
            out[cell.run_id] = validate(run_config(cfg, cell, entries))
            if cell.corpus in cards:
                fit.check_card(out[cell.run_id], cards[cell.corpus])
        except ConfigError as err:
            raise WorkflowConfigError(
                f"grid cell {cell.run_id} (grids: {', '.join(cell.grids)}) cannot run: {err}"
            ) from None
    return out


def load(config: dict, schema_path: str | Path) -> tuple[dict, list[Cell], dict[str, dict]]:
    """What the Snakefile needs: the checked config, the cells, and each cell's validated run config."""
    cfg = check(config, load_schema(schema_path))
    return cfg, cells(cfg), validated_run_configs(cfg)


def started_in(cwd: Path, workdir: str | None) -> Path:
    """The folder the workflow was started from, given the current one.  Under the SLURM executor a job
    parses the workflow twice, the second time (the job step) already inside the config's relative
    ``workdir``: then it is the folder above it, and the ``workdir:`` directive must not apply again
    (it would nest ``workdir/workdir``)."""
    if not workdir or Path(workdir).is_absolute():
        return cwd
    parts = Path(workdir).parts
    return Path(*cwd.parts[: -len(parts)]) if cwd.parts[-len(parts):] == parts else cwd


def with_absolute_data_cache(config: dict, start: Path | None = None) -> dict:
    """A config with a ``workdir`` runs its jobs there: its data cache, relative to where the workflow
    started (``start``, default the current folder), becomes absolute (in the run configs too), so the
    jobs find the data the workflow prepared."""
    if not config.get("workdir"):
        return config
    start = Path.cwd() if start is None else start
    return {**config, "data_cache": str((start / config.get("data_cache", "data_cache")).resolve())}


def load_file(
    path: str | Path | list[str | Path], schema_path: str | Path
) -> tuple[dict, list[Cell], dict[str, dict]]:
    """:func:`load` of a config file; several files (overlays) are merged in order, as Snakemake
    merges several ``--configfile``."""
    return load(read_config(path), schema_path)


def read_config(path: str | Path | list[str | Path]) -> dict:
    """The raw workflow config of one file or of several merged in order (overlays)."""
    raw: dict = {}
    for one in [path] if isinstance(path, str | Path) else path:
        try:
            raw = merge(raw, yaml.safe_load(Path(one).read_text()) or {})
        except FileNotFoundError:
            raise WorkflowConfigError(f"workflow config {one} does not exist") from None
    return raw


def run_config_yaml(run: dict) -> str:
    """A cell's resolved run config as the YAML file `normlab train --config` reads."""
    header = "# written by the workflow (rule run_config); run alone with: normlab train --config THIS --out DIR\n"
    return header + yaml.safe_dump(run, sort_keys=True)


def resources(cfg: dict, rule: str) -> dict:
    """threads / mem_mb / runtime of a rule: its own entry over `default` over built-in fallbacks."""
    base = {"threads": 1, "mem_mb": 2000, "runtime": 30}
    return {**base, **cfg["resources"].get("default", {}), **cfg["resources"].get(rule, {})}


def per_attempt(value: int):
    """A Snakemake resource function: ``value`` times the attempt (1 on the first try, 2 on the first
    retry, ...), so a job that ran out of memory or time is resubmitted with more."""

    def request(wildcards, attempt: int) -> int:
        return value * attempt

    request.base = value  # for the tests and the docs
    return request


def rule_resources(cfg: dict, rule: str) -> dict:
    """The ``resources:`` of a rule: mem_mb and runtime (minutes) as configured on the first attempt,
    growing with each retry (:func:`per_attempt`).  The GPU count does not grow: it is part of a run's
    recipe (the processes split each update's batches)."""
    base = resources(cfg, rule)
    return {"mem_mb": per_attempt(base["mem_mb"]), "runtime": per_attempt(base["runtime"])}


# --- GPUs per cell, processes per job, and the SLURM site settings ---------------------------------

GPU_RULES = ("train", "probe")  # the rules that run on a GPU (the probe on one, whatever the training used)


def gpus(cfg: dict) -> dict[str, int]:
    """Setting name -> GPUs of one of its training jobs (``datasets.NAME.gpus``; a variant or a sweep
    point has its dataset's unless it sets its own)."""
    return {name: int(entry.get("gpus", 1)) for name, entry in settings(cfg).items()}


def gpu_request(rule: str, n_gpus: int) -> int:
    """The GPUs a job of ``rule`` asks for when its setting trains on ``n_gpus``."""
    if rule == "train":
        return n_gpus
    return min(n_gpus, 1) if rule in GPU_RULES else 0


def normlab_command(src: str | Path, nproc: int = 1) -> str:
    """The shell words that run normlab from the workflow's own source tree ``src`` with the ``python``
    on PATH (the venv's or the conda environment's): ``env PYTHONPATH=SRC python -m normlab``, or with
    ``nproc`` > 1, ``torchrun --standalone --nproc_per_node N -m normlab`` (one process per GPU)."""
    prefix = f"env PYTHONPATH={shlex.quote(str(src))}"
    if nproc > 1:
        return f"{prefix} torchrun --standalone --nproc_per_node {nproc} -m normlab"
    return f"{prefix} python -m normlab"


def _logged(command: str, log: str | None) -> str:
    return command if log is None else f"{command} > {log} 2>&1"


def train_command(normlab: str, config: str, run_dir: str, log: str | None = None) -> str:
    """The train rule's command (``normlab``: :func:`normlab_command`; ``log``: where its output goes);
    the rule and tools/run_cells.py both build it here."""
    return _logged(f"{normlab} train --config {config} --out {run_dir} --resume --restart-if-changed", log)


def probe_command(
    normlab: str, run_dir: str, out: str, mode: str, batches, population_tokens, cache: str, log: str | None = None
) -> str:
    """The probe rule's command (the values: the config's ``analysis.probe_*``)."""
    return _logged(f"{normlab} probe --run {run_dir} --out {out} --mode {mode} --batches {batches} "
                   f"--population-tokens {population_tokens} --cache {cache}", log)


def python_imports_torch(python: str | None, running: str) -> bool:
    """Whether the interpreter ``python`` (the one on PATH, which every job runs) finds torch; true
    without asking when it is the ``running`` interpreter (which has imported normlab)."""
    if python is None:
        return False
    if Path(python).resolve() == Path(running).resolve():
        return True
    found = "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"
    return subprocess.run([python, "-c", found], capture_output=True).returncode == 0


SITE_FILE = "slurm/site.yaml"
SITE_SETTINGS = {  # key of slurm/site.yaml -> the environment variable that overrides it
    "account": "NORMLAB_SLURM_ACCOUNT",
    "gpu_partition": "NORMLAB_SLURM_GPU_PARTITION",
    "cpu_partition": "NORMLAB_SLURM_CPU_PARTITION",
}


def site_settings(path: str | Path, environ: dict | None = None) -> dict[str, str]:
    """Your SLURM site's settings: ``slurm/site.yaml`` (untracked; ``slurm/site.example.yaml`` is the
    template) when it exists, each key overridden by its environment variable (:data:`SITE_SETTINGS`)
    when that is set and not empty.  Unset keys are absent."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    found: dict = {}
    if path.exists():
        try:
            found = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise WorkflowConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); "
                                      f"see {path.with_name('site.example.yaml')}") from None
        if not isinstance(found, dict):
            raise WorkflowConfigError(f"{path} must be a mapping of {', '.join(SITE_SETTINGS)}")
        unknown = sorted(set(found) - set(SITE_SETTINGS))
        if unknown:
            raise WorkflowConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: "
                                      f"{', '.join(SITE_SETTINGS)}")
    out = {key: str(value) for key, value in found.items() if value not in (None, "")}
    out.update({key: environ[var] for key, var in SITE_SETTINGS.items() if environ.get(var)})
    return out


def slurm_resources(site: dict[str, str], n_gpus: int) -> dict[str, str]:
    """``slurm_partition`` / ``slurm_account`` of a job asking for ``n_gpus`` GPUs (the GPU partition
    when it asks for any, else the CPU partition); a setting not given is left to SLURM's default."""
    partition = site.get("gpu_partition" if n_gpus else "cpu_partition")
    out = {"slurm_partition": partition} if partition else {}
    if site.get("account"):
        out["slurm_account"] = site["account"]
    return out


def check_gpu_partition(site: dict[str, str], gpu_jobs: int) -> None:
    """Refuse to submit GPU jobs without a GPU partition: they would go to the default partition, often
    CPU-only, and wait there for ever or fail."""
    if gpu_jobs and not site.get("gpu_partition"):
        raise WorkflowConfigError(
            f"{gpu_jobs} job(s) need a GPU but no GPU partition is set: put `gpu_partition: NAME` in "
            f"{SITE_FILE} (copy slurm/site.example.yaml) or export {SITE_SETTINGS['gpu_partition']}=NAME "
            "(`sinfo -o '%P %G'` lists the partitions and their GPUs)"
        )


def batch_stats(norm: str) -> bool:
    """Whether a norm keeps batch statistics (its class is a BatchStatNorm): the manifest says so, so
    that the analysis, which does not import torch, never keeps its own list."""
    return issubclass(NORMS[norm], BatchStatNorm)


def running_momentum(norm: str, run: dict) -> float | None:
    """A batch-statistics norm's running-average momentum in a run: its option, else the class default."""
    if not batch_stats(norm):
        return None
    given = (run.get("model", {}).get("norm_options") or {}).get("momentum")
    if given is not None:
        return float(given)
    param = inspect.signature(NORMS[norm].__init__).parameters.get("momentum")
    return None if param is None or param.default is inspect.Parameter.empty else float(param.default)


def manifest_csv(
    cfg: dict, cell_list: list[Cell], paths: dict[str, str] | None = None, runs: dict[str, dict] | None = None
) -> str:
    """The manifest (docs/analysis_contract.md §2); ``paths``: the path patterns of run_dir, probe_dir
    and benchmark with the cell's wildcards in braces (default :data:`PATHS`'); ``runs``: the validated
    run configs (run_id -> config; computed when not given), for each cell's momentum and warm-up."""
    paths = paths if paths is not None else PATHS.manifest_patterns()
    runs = runs if runs is not None else validated_run_configs(cfg)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in cell_list:
        run = runs[cell.run_id]
        momentum = running_momentum(cell.norm, run)
        writer.writerow(
            {
                "run_id": cell.run_id,
                "config_name": cfg["name"],
                "scale": cfg["scale"],
                "task": DATASETS[cell.corpus].family,
                **cell.wildcards,
                "grids": ";".join(cell.grids),
                **{key: pattern.format(**cell.wildcards) for key, pattern in paths.items()},
                "batch_stats": batch_stats(cell.norm),
                "momentum": "" if momentum is None else momentum,
                "warmup_steps": run.get("optim", {}).get("warmup_steps", ""),
            }
        )
    return buf.getvalue()


def baseline_settings(cfg: dict, cell_list: list[Cell], runs: dict[str, dict]) -> list[dict]:
    """One entry per setting for ``normlab baselines``: its corpus, family, the data options its runs
    evaluate with and their BLEU tokenizer (a setting's runs share them: taken from its first cell)."""
    out: dict[str, dict] = {}
    for cell in cell_list:
        if cell.dataset in out:
            continue
        run = runs[cell.run_id]
        options = {k: v for k, v in run["data"].get("options", {}).items() if k != "cache"}
        out[cell.dataset] = {"dataset": cell.dataset, "corpus": cell.corpus, "family": DATASETS[cell.corpus].family,
                             "data_options": options, "bleu_tokenize": run.get("eval", {}).get("bleu_tokenize", "13a")}
    return list(out.values())


def norm_options_text(cfg: dict, norm: str) -> str:
    """A norm's configured options as one line for the figures (e.g. RBN's λ per placement)."""
    opts = cfg["norm_options"].get(norm, {})
    parts = [f"{where}: " + ", ".join(f"{k} {v}" for k, v in sorted(o.items())) for where, o in opts.items() if o]
    return f"{norm.upper()} options: {'; '.join(parts)}" if parts else f"{norm.upper()}: default options"


SWEEP_POINT_COLUMNS = ("setting", "corpus", "factor", "level", "level_value", "level_rank", "is_base", "placement")


def sweep_points_csv(cfg: dict) -> str:
    """The sweep's points (header only without a sweep): which setting is which factor level."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SWEEP_POINT_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in sweep_points(cfg):
        writer.writerow({**row, "level_value": "" if row["level_value"] is None else row["level_value"]})
    return buf.getvalue()
