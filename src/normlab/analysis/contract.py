"""The names the analysis stages share, defined once (``docs/analysis_contract.md``).

The tidy and statistics tables, their columns, the figures, notebooks and paper tables are listed here
and imported by every module that reads or writes them, by the workflow rules (``workflows/*.smk``)
and by the tests.  Torch-free and cheap to import: the Snakefile imports it at parse time.
"""

from __future__ import annotations

ID_COLUMNS = ["run_id", "config_name", "scale", "task", "dataset", "placement", "norm", "seed"]

# The manifest (written by normlab.workflow, read by `normlab collect`).  `batch_stats`: the norm keeps
# batch statistics (a subclass of normlab.norms.BatchStatNorm); `momentum`: its running-average
# momentum (empty for other norms); `warmup_steps`: the run's learning-rate warm-up.
MANIFEST_COLUMNS = ID_COLUMNS + ["grids", "run_dir", "probe_dir", "benchmark", "batch_stats", "momentum",
                                 "warmup_steps"]

# Every tidy table `normlab collect` writes: its columns after the id columns.
TIDY_TABLES: dict[str, list[str]] = {
    "runs": ["status", "grids", "steps", "epochs", "diverged_at_step", "wall_time_s", "tokens_seen",
             "tokens_per_batch", "n_params", "device", "primary_metric", "higher_is_better", "config_hash",
             "batch_stats", "momentum", "warmup_steps"],
    "scores": ["split", "stats", "metric", "value", "primary", "higher_is_better"],
    "curves": ["step", "kind", "metric", "value"],
    "tid": ["method", "step", "module", "layer", "position", "kind", "value", "std", "n_batches"],
    "tid_decomposition": ["module", "layer", "position", "kind", "component", "value", "std", "n_batches",
                          "tokens_per_batch", "method", "probe_mode", "momentum"],
    "conditioning": ["module", "layer", "position", "measure", "value", "dim", "n_tokens", "site", "centred"],
    "benchmarks": ["rule", "s", "max_rss_mb", "cpu_time_s"],
}
# Tidy tables a configuration's committed results may lack: `tid` holds every online TID record (the
# scale study's is 36 MB, too big to commit; the statistics summarise it, and treat it as empty when
# absent).  A regeneration from committed tidy tables (`make figures`) needs every other tidy table.
UNCOMMITTED_TIDY_TABLES = ("tid",)
# Columns a table written before issue 14 lacks, and what such an old-style table means (read as).
OLD_STYLE_DEFAULTS: dict[str, dict[str, object]] = {
    "runs": {"batch_stats": None, "momentum": None, "warmup_steps": None},
    "tid_decomposition": {"probe_mode": "eval", "momentum": None},
    "conditioning": {"site": "input", "centred": False},
}
# The probe's component names; `floor` is the old name of `floor_token`.
COMPONENTS = ("observed", "batch_vs_population", "floor_token", "floor_sentence", "lag", "floor_theory")
OLD_COMPONENT_NAMES = {"floor": "floor_token"}
TID_KINDS = ("mean_tid", "var_tid")
CONDITION_MEASURES = ("c50", "c80", "cmax")
STATUSES = ("completed", "diverged", "missing")

# `normlab baselines` (the trivial baselines of the learning bars): a tidy table beside collect's.
BASELINES_TABLE = "baselines"
BASELINE_COLUMNS = ["dataset", "corpus", "task", "metric", "baseline", "value", "split", "n_examples",
                    "n_targets", "selection"]
# A learning bar's baseline kind -> the metric it is measured in.
BASELINE_METRIC = {"copy_source": "bleu", "copy_source_tok": "bleu_tok", "unigram": "ppl", "majority": "accuracy",
                   "all_o": "f1"}

# Every table `normlab stats` writes (results/stats/NAME.csv), plus the declared settings it used.
STATS_TABLES = ("summary", "comparisons", "learning_bars", "tid_layers", "tid_summary", "tid_profile", "tid_curves",
                "curves_summary", "correlations", "tid_gap", "conditioning_summary", "runtime")
STATS_SETTINGS = "analysis.json"

# The paper outputs.
PAPER_TABLES = ("table2_bn_rbn", "ln_family", "conditioning", "runtime")
CLAIMS_OUTPUTS = ("claims.md", "claims.csv")
FIGURES = ("tid_curves", "tid_decomposition", "tid_bn_vs_rbn", "tid_vs_gap", "eval_mode_gap",
           "training_curves", "conditioning")
NOTEBOOKS = ("tid_dynamics", "performance", "conditioning", "ln_family")
SCALE_NOTEBOOK = "scale_study"
SCALE_TABLE = "scale_study"


def scale_figures(factors) -> list[str]:
    """The scale study's figures: one per swept factor and the summary."""
    return [f"scale_{factor}" for factor in factors] + ["scale_summary"]


def notebooks(sweep: bool) -> list[str]:
    """The executed notebooks of a configuration (the scale notebook only with a sweep)."""
    return list(NOTEBOOKS) + ([SCALE_NOTEBOOK] if sweep else [])


def committed_tidy_tables() -> list[str]:
    """The tidy tables a regeneration from committed results needs: collect's (but the uncommitted ones)
    and the baselines."""
    return [t for t in TIDY_TABLES if t not in UNCOMMITTED_TIDY_TABLES] + [BASELINES_TABLE]


def tidy_columns(table: str) -> list[str]:
    return ID_COLUMNS + TIDY_TABLES[table]
