"""``normlab stats``: every number the tables, figures, notebooks and claims show, computed once.

    normlab stats --tidy results/tidy --out results/stats [--analysis JSON|FILE]

``--analysis`` is the workflow config's ``analysis:`` section (the rule passes it; defaults:
:mod:`normlab.analysis.options`): the declared margins, learning bars, TID summary and growth windows.
Everything here comes from scipy/statsmodels; the tables (``docs/analysis_contract.md`` §5):

* ``learning_bars``: per setting, LN's primary test metric against its trivial baseline
  (``baselines.csv``, ``normlab baselines``) plus the declared margin; a setting that fails is not
  testable, and every comparison row carries that flag and its reason;
* ``comparisons``: paired by seed, oriented so that **positive = the first norm better**; the effect in
  the metric's units and relative, a 95 % t-interval (BCa bootstrap from :data:`BOOTSTRAP_MIN_N` pairs),
  one-sided tests for superiority either way, non-inferiority and inferiority at the declared margin,
  equivalence (TOST), each Holm-adjusted within its family (config × comparison × measure, testable
  settings only), and the minimum detectable effect (one-sided paired t at α / family size, power 0.8,
  ``statsmodels.stats.power.TTestPower``);
* ``tid_layers`` (per run, norm module and TID kind) and ``tid_summary`` (per run, kind and summary over
  layers: first BN layer, maximum, mean): the probe's components, the ratios of batch_vs_population to
  each floor, the excess over a floor in quadrature, the running average's own noise beside ``lag``,
  and the online TID's growth between the declared windows;
* ``tid_curves`` and ``curves_summary``: online TID and loss curves, mean ± sd over seeds per step;
* ``correlations`` and ``tid_gap`` (claim A4): Spearman's ρ of BN's TID (declared summary) with
  BN − LN over the testable settings, with an exact permutation p-value (Monte Carlo beyond
  :data:`EXACT_PERMUTATION_MAX_N` points), a Fisher interval on the ranks and the smallest detectable ρ;
* ``conditioning_summary``: per module, the condition numbers, with the positions claim A9 compares;
* ``summary``: mean ± sd per setting × norm × measure.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestPower

from normlab.atomic import atomic_write_text

from . import options as analysis_options
from .contract import (
    BASELINES_TABLE,
    ID_COLUMNS,
    STATS_SETTINGS,
    STATS_TABLES,
    TID_KINDS,
    TIDY_TABLES,
    UNCOMMITTED_TIDY_TABLES,
)
from .labels import BASELINE_LABELS, module_key
from .tidy import limitations, read_tidy, write_csv

ALPHA = 0.05
POWER = 0.8
CONFIDENCE = 0.95
BOOTSTRAP_MIN_N = 10  # below it, a percentile bootstrap over n pairs is about [min, max]: t-intervals
WILCOXON_MIN_N = 6  # below it the exact two-sided signed-rank test cannot reach p < 0.05
EXACT_PERMUTATION_MAX_N = 8  # 8! = 40,320 pairings: enumerated; more points: Monte Carlo
N_PERMUTATIONS = 99_999
N_RESAMPLES = 9999
SETTING = ["config_name", "dataset", "placement"]
SUMMARIES = analysis_options.TID_SUMMARIES
P_TESTS = ("two_sided", "better", "worse", "noninferior", "inferior", "equivalent")


@dataclass(frozen=True)
class Comparison:
    """``a`` vs ``b`` ((norm, stats) each) on one measure; the claims name it by ``name``."""

    name: str
    a: tuple[str, str]
    b: tuple[str, str]
    measure: str


POP = "population"
PRIMARY_PAIRS = [("rbn", "ln"), ("rbn", "bn"), ("bn", "ln"), ("powernorm", "ln"), ("ln_simple", "ln"),
                 ("detachnorm", "ln_simple"), ("adanorm", "ln"), ("none", "ln")]
LOSS_PAIRS = [("bn", "ln"), ("ln", "ln_simple"), ("ln", "adanorm")]  # A1 (training loss), B4
TID_PAIRS = [("rbn", "bn")]  # A6
CONDITIONING_PAIRS = [("rbn", "ln"), ("bn", "ln"), ("rbn", "bn")]  # A9


def comparisons_wanted(batch_norms: list[str]) -> list[Comparison]:
    out = [Comparison(f"{x}-{y}", (x, POP), (y, POP), "primary") for x, y in PRIMARY_PAIRS]
    out += [Comparison(f"{x}-{y}", (x, POP), (y, POP), m) for x, y in LOSS_PAIRS
            for m in ("final_train_loss", "valid_loss")]
    out += [Comparison(f"{x}-{y}", (x, POP), (y, POP), "tid") for x, y in TID_PAIRS]
    out += [Comparison(f"{x}-{y}", (x, POP), (y, POP), f"log10_{m}") for x, y in CONDITIONING_PAIRS
            for m in ("c50", "c80", "cmax")]
    out += [Comparison(f"{n}:batch_stats-population", (n, "batch_stats"), (n, POP), "primary")
            for n in batch_norms]  # claim A1
    return out


COMPARISON_COLUMNS = [
    "family", "comparison", "measure", "config_name", "scale", "task", "dataset", "placement", "metric",
    "split", "higher_is_better", "norm_a", "stats_a", "norm_b", "stats_b",
    "n_a", "mean_a", "std_a", "n_missing_a", "n_diverged_a", "n_b", "mean_b", "std_b", "n_missing_b",
    "n_diverged_b", "testable", "not_testable_reason", "n_pairs", "diff_mean", "diff_std", "test_scale",
    "estimate", "estimate_sd", "ci_low", "ci_high", "ci_method", "rel_effect", "rel_ci_low", "rel_ci_high",
    "margin", "margin_test", "test", "t_stat", "p_two_sided", "p_better", "p_worse", "p_noninferior", "p_inferior",
    "p_equivalent", "p_wilcoxon", "holm_m", "p_holm_two_sided", "p_holm_better", "p_holm_worse",
    "p_holm_noninferior", "p_holm_inferior", "p_holm_equivalent", "mde", "mde_rel", "mde_alpha",
    "p", "p_holm", "significant", "note",
]
SUMMARY_COLUMNS = ["config_name", "scale", "task", "dataset", "placement", "norm", "measure", "metric", "split",
                   "stats", "higher_is_better", "n", "n_runs", "n_completed", "n_missing", "n_diverged",
                   "mean", "std"]
LEARNING_BAR_COLUMNS = ["config_name", "scale", "task", "dataset", "placement", "metric", "higher_is_better",
                        "baseline", "baseline_value", "margin", "relative", "bar", "ln_n", "ln_mean", "passes",
                        "testable", "reason"]
LAYER_QUANTITIES = ["observed", "batch_vs_population", "floor_token", "floor_sentence", "floor_theory", "floor_ref",
                    "ratio_token", "ratio_sentence", "ratio_ref", "excess_sentence", "excess_token", "lag",
                    "lag_noise", "lag_ratio"]
TID_LAYER_COLUMNS = ID_COLUMNS + ["status", "kind", "module", "layer", "position", "order", "is_first", "in_summary",
                                  "method", "probe_mode", "momentum", "tokens_per_batch", "n_batches",
                                  "floor_ref_kind"] + LAYER_QUANTITIES
GROWTH_COLUMNS = ["early", "late", "growth", "window_start", "early_from", "early_to", "late_from", "late_to",
                  "online_steps", "growth_note"]
TID_SUMMARY_COLUMNS = ID_COLUMNS + ["status", "kind", "summary", "declared", "n_layers", "probe_mode",
                                    "floor_ref_kind"] + LAYER_QUANTITIES + GROWTH_COLUMNS
TID_PROFILE_COLUMNS = SETTING + ["scale", "task", "norm", "kind", "module", "order", "method", "quantity", "mean",
                                 "sd", "n"]
CURVE_COLUMNS = SETTING + ["scale", "task", "norm", "group", "kind", "metric", "step", "mean", "sd", "n"]
TID_CURVE_COLUMNS = SETTING + ["scale", "task", "norm", "group", "kind", "summary", "step", "mean", "sd", "n"]
CORRELATION_COLUMNS = ["config_name", "scale", "placement", "kind", "tid_summary", "tid_measure", "gap",
                       "expected_sign", "n_settings", "settings", "n_excluded", "excluded", "rho", "p", "p_method",
                       "ci_low", "ci_high", "ci_method", "mde_rho", "note"]
TID_GAP_COLUMNS = ["config_name", "scale", "task", "dataset", "placement", "kind", "tid_summary", "tid_measure",
                   "tid", "tid_sd", "tid_n", "floor_ref", "floor_ref_kind", "tid_over_floor", "gap_rel",
                   "gap_rel_ci_low", "gap_rel_ci_high", "gap_n", "included", "reason", "rank_tid", "rank_gap"]
CONDITIONING_SUMMARY_COLUMNS = SETTING + ["scale", "task", "norm", "module", "order", "measure", "site", "centred",
                                          "a9_position", "a9_measure", "n", "mean_log10", "sd_log10", "mean", "sd"]
RUNTIME_COLUMNS = ["config_name", "scale", "rule", "dataset", "norm", "n", "s_mean", "s_std", "max_rss_mb",
                   "cpu_time_s", "ratio_to_ln"]


# --- per-run observations ----------------------------------------------------------------------------


def _runs_measure(runs: pd.DataFrame, values: pd.DataFrame, measure: str, metric: str | None = None,
                  higher: bool | None = None, split: str = "test", stats: str = POP,
                  metric_col: str | None = None) -> pd.DataFrame:
    """Every run (missing and diverged included, value NaN) with one value per run of ``measure``."""
    base = runs[ID_COLUMNS + ["status", "primary_metric", "higher_is_better"]].copy()
    cols = ["run_id", "value"] + ([metric_col] if metric_col else [])
    out = base.merge(values[cols], on="run_id", how="left")
    out["measure"], out["split"], out["stats"] = measure, split, stats
    out["metric"] = out[metric_col].fillna(out["primary_metric"]) if metric_col else metric
    if higher is not None:
        out["higher_is_better"] = higher
    out.loc[out["status"] != "completed", "value"] = np.nan
    return out.drop(columns=[c for c in [metric_col] if c and c != "metric"])


def observations(tidy: dict[str, pd.DataFrame], tid_sum: pd.DataFrame, cond_runs: pd.DataFrame,
                 declared: str) -> pd.DataFrame:
    """One row per run × measure: the values that the summaries and comparisons use."""
    runs, scores, curves = tidy["runs"], tidy["scores"], tidy["curves"]
    parts = []
    batch_norms = set(runs.loc[runs["batch_stats"].astype(bool), "norm"])
    for stats_name in (POP, "batch_stats"):
        sel = scores[(scores["split"] == "test") & (scores["stats"] == stats_name) & scores["primary"]]
        part = _runs_measure(runs, sel, "primary", stats=stats_name, metric_col="metric")
        if stats_name == "batch_stats":  # only models that have batch statistics (the manifest says which)
            part = part[part["norm"].isin(batch_norms)]
        parts.append(part)
    valid_loss = scores[(scores["split"] == "valid") & (scores["stats"] == POP) & (scores["metric"] == "loss")]
    parts.append(_runs_measure(runs, valid_loss, "valid_loss", metric="loss", higher=False, split="valid"))
    train = curves[(curves["kind"] == "train") & (curves["metric"] == _train_loss_metric(curves))]
    last_train = train.sort_values("step").groupby("run_id", as_index=False).last()  # the last logged window
    parts.append(_runs_measure(runs, last_train, "final_train_loss", metric="loss", higher=False, split="train"))
    tid = tid_sum[(tid_sum["kind"] == "mean_tid") & (tid_sum["summary"] == declared)]
    parts.append(_runs_measure(runs, tid.rename(columns={"observed": "value"}), "tid", metric="mean_tid",
                               higher=False, split="probe"))
    for measure in ("c50", "c80", "cmax"):
        sel = cond_runs[cond_runs["measure"] == measure]
        parts.append(_runs_measure(runs, sel, f"log10_{measure}", metric=f"log10_{measure}", higher=False,
                                   split="probe"))
    return pd.concat(parts, ignore_index=True)


def _train_loss_metric(curves: pd.DataFrame) -> str:
    """The task loss without penalties where the engine logs it (``task_loss``), else ``loss`` (which
    includes RBN's penalty)."""
    return "task_loss" if (curves["metric"] == "task_loss").any() else "loss"


# --- summaries ---------------------------------------------------------------------------------------


def _sample_std(x: pd.Series) -> float:
    x = x.dropna()
    return float(np.std(x, ddof=1)) if len(x) >= 2 else np.nan


def summarise(obs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sample std (ddof=1) and n per setting × norm × measure, with run counts by status."""
    if obs.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    keys = ["config_name", "scale", "task", "dataset", "placement", "norm", "measure", "metric", "split",
            "stats", "higher_is_better"]
    g = obs.groupby(keys, dropna=False)
    out = g.agg(
        n=("value", "count"), n_runs=("run_id", "count"),
        n_completed=("status", lambda s: int((s == "completed").sum())),
        n_missing=("status", lambda s: int((s == "missing").sum())),
        n_diverged=("status", lambda s: int((s == "diverged").sum())),
        mean=("value", "mean"), std=("value", _sample_std),
    ).reset_index()
    # a measure a norm does not have (no TID for LN) is no cell; the primary metric always is one
    out = out[(out["n"] > 0) | (out["measure"] == "primary") | (out["n_completed"] < out["n_runs"])]
    return out[SUMMARY_COLUMNS].reset_index(drop=True)


# --- learning bars -----------------------------------------------------------------------------------


def learning_bars(tidy: dict[str, pd.DataFrame], opts: dict) -> pd.DataFrame:
    """Per setting: does LN beat its trivial baseline by the declared margin?  (not: not testable)"""
    runs, scores, base = tidy["runs"], tidy["scores"], tidy.get(BASELINES_TABLE)
    base = base if base is not None else pd.DataFrame(columns=["dataset", "baseline", "metric", "value"])
    ln = scores[(scores["norm"] == "ln") & (scores["split"] == "test") & (scores["stats"] == POP)
                & scores["primary"]]
    ln = ln[ln["run_id"].isin(runs.loc[runs["status"] == "completed", "run_id"])]
    rows = []
    for key, g in runs.groupby(SETTING, sort=True):
        setting = dict(zip(SETTING, key, strict=True))
        metrics = [m for m in g["primary_metric"].dropna().astype(str) if m]
        metric = metrics[0] if metrics else ""
        row = setting | dict(scale=g["scale"].iloc[0], task=g["task"].iloc[0], metric=metric,
                             higher_is_better=bool(g["higher_is_better"].dropna().iloc[0])
                             if g["higher_is_better"].notna().any() else np.nan,
                             baseline="", baseline_value=np.nan, margin=np.nan, relative=False, bar=np.nan,
                             ln_n=0, ln_mean=np.nan, passes=False, testable=False, reason="")
        vals = ln[(ln["config_name"] == key[0]) & (ln["dataset"] == key[1]) & (ln["placement"] == key[2])]["value"]
        row["ln_n"], row["ln_mean"] = int(vals.notna().sum()), float(vals.mean()) if vals.notna().any() else np.nan
        spec = opts["learning_bars"].get(metric)
        if not metric:
            row["reason"] = "primary metric unknown (no run of this setting finished)"
        elif spec is None:
            row["reason"] = f"no learning bar declared for {metric} (analysis.learning_bars)"
        else:
            row.update(baseline=spec["baseline"], margin=float(spec["margin"]), relative=bool(spec.get("relative")))
            hit = base[(base["dataset"] == key[1]) & (base["baseline"] == spec["baseline"])
                       & (base["metric"] == metric)]
            if hit.empty:
                row["reason"] = (f"no {BASELINE_LABELS.get(spec['baseline'], spec['baseline'])} baseline computed "
                                 "for this setting (baselines.csv; run `normlab baselines`)")
            else:
                value = float(hit["value"].iloc[0])
                higher = bool(row["higher_is_better"])
                m = row["margin"]
                if row["relative"]:
                    bar = value * (1 + m) if higher else value * (1 - m)
                else:
                    bar = value + m if higher else value - m
                row.update(baseline_value=value, bar=bar)
                if row["ln_n"] == 0:
                    row["reason"] = "no completed LN run to check the learning bar"
                else:
                    passes = row["ln_mean"] >= bar if higher else row["ln_mean"] <= bar
                    word = "above" if higher else "below"
                    what = f"{'+' if higher else '−'}{m:g}{' (relative)' if row['relative'] else ''}"
                    text = (f"LN {metric} {row['ln_mean']:.4g} (n={row['ln_n']}) vs bar {bar:.4g} = "
                            f"{BASELINE_LABELS.get(spec['baseline'], spec['baseline'])} {value:.4g} {what}")
                    row.update(passes=bool(passes), testable=bool(passes),
                               reason=(f"{text}: {'passes' if passes else f'not {word} the bar: LN did not learn'}"))
        rows.append(row)
    return pd.DataFrame(rows, columns=LEARNING_BAR_COLUMNS)


# --- paired comparisons ------------------------------------------------------------------------------


def _t_interval(d: np.ndarray) -> tuple[float, float]:
    ci = sps.ttest_1samp(d, 0.0).confidence_interval(CONFIDENCE)
    return float(ci.low), float(ci.high)


def paired_test(diff: np.ndarray, margin: float = np.nan, seed: int = 0) -> dict:
    """The interval, tests and their p-values of paired differences in test units (oriented: + = a
    better); ``margin`` in the same units (NaN: no non-inferiority/equivalence tests).  NaN where n or
    the data do not allow; ``note`` says why."""
    d = np.asarray(diff, dtype=float)
    n = len(d)
    out = dict(n_pairs=n, estimate=float(d.mean()) if n else np.nan,
               estimate_sd=float(np.std(d, ddof=1)) if n >= 2 else np.nan, ci_low=np.nan, ci_high=np.nan,
               ci_method="", test="ttest_rel", t_stat=np.nan, p_wilcoxon=np.nan, note="",
               **{f"p_{t}": np.nan for t in P_TESTS})
    if n < 2:
        out["note"] = f"{n} complete pair(s): no interval, no test"
        return out
    if np.ptp(d) == 0:
        out["note"] = "the differences have zero variance: no t-interval, the t-test is undefined"
        return out
    if n >= BOOTSTRAP_MIN_N:
        boot = sps.bootstrap((d,), np.mean, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES, method="BCa",
                             rng=np.random.default_rng(seed))
        out["ci_low"], out["ci_high"] = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        out["ci_method"] = f"BCa bootstrap ({N_RESAMPLES} resamples)"
    else:
        out["ci_low"], out["ci_high"] = _t_interval(d)
        out["ci_method"] = f"t ({n - 1} df)"
    t = sps.ttest_1samp(d, 0.0)
    out["t_stat"], out["p_two_sided"] = float(t.statistic), float(t.pvalue)
    out["p_better"] = float(sps.ttest_1samp(d, 0.0, alternative="greater").pvalue)
    out["p_worse"] = float(sps.ttest_1samp(d, 0.0, alternative="less").pvalue)
    if math.isfinite(margin):
        lower = float(sps.ttest_1samp(d, -margin, alternative="greater").pvalue)
        out["p_noninferior"] = lower
        out["p_inferior"] = float(sps.ttest_1samp(d, -margin, alternative="less").pvalue)
        out["p_equivalent"] = max(lower, float(sps.ttest_1samp(d, margin, alternative="less").pvalue))
    if n >= WILCOXON_MIN_N and np.any(d != 0):
        out["p_wilcoxon"] = float(sps.wilcoxon(d).pvalue)
    return out


def minimum_detectable_effect(n: int, sd: float, alpha: float, power: float = POWER) -> float:
    """The smallest true mean difference a one-sided paired t-test at ``alpha`` detects with ``power``
    (``statsmodels`` TTestPower), in the units of ``sd``."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="larger")
        except (ValueError, RuntimeError):
            return np.nan
    d = float(np.asarray(d).ravel()[0])
    return d * sd if math.isfinite(d) else np.nan


def _measure_scale(measure: str, metric: str, opts: dict) -> tuple[str, float, dict | None]:
    """(test scale 'absolute'|'log', margin in test units, the declared margin) of a measure."""
    if measure == "tid":
        return "log", np.nan, None
    if measure.startswith("log10_"):  # already log10 of a condition number
        return "log10", np.nan, None
    spec = opts["margins"].get(metric)
    if spec is None:
        return "absolute", np.nan, None
    if spec.get("relative"):
        return "log", math.log1p(float(spec["value"])), spec
    return "absolute", float(spec["value"]), spec


def _status_counts(frame: pd.DataFrame) -> dict:
    v = frame["value"].to_numpy(float)
    v = v[np.isfinite(v)]
    status = frame["status"].to_numpy()
    return dict(n=len(v), mean=float(v.mean()) if len(v) else np.nan,
                std=float(np.std(v, ddof=1)) if len(v) >= 2 else np.nan,
                n_missing=int((status == "missing").sum()), n_diverged=int((status == "diverged").sum()))


def compare(obs: pd.DataFrame, comp: Comparison, opts: dict, bars: pd.DataFrame) -> list[dict]:
    """``comp`` per setting, paired by seed."""
    sel = obs[obs["measure"] == comp.measure]
    side_a = sel[(sel["norm"] == comp.a[0]) & (sel["stats"] == comp.a[1])]
    side_b = sel[(sel["norm"] == comp.b[0]) & (sel["stats"] == comp.b[1])]
    groups_b = dict(iter(side_b.groupby(SETTING)))
    bar_of = {tuple(r[k] for k in SETTING): r for r in bars.to_dict("records")}
    rows = []
    for key, fa in side_a.groupby(SETTING):
        if key not in groups_b:
            continue
        fb, setting = groups_b[key], dict(zip(SETTING, key, strict=True))
        metrics = {m for m in set(fa["metric"].dropna()) | set(fb["metric"].dropna()) if m}
        if len(metrics) > 1:
            raise ValueError(f"{comp.name} on {setting}: the two sides report different metrics {metrics}")
        metric = next(iter(metrics), "")
        higher = fa["higher_is_better"].dropna()
        higher = bool(higher.iloc[0]) if len(higher) else True
        by_seed_b = dict(zip(fb["seed"], fb["value"].to_numpy(float), strict=True))
        pairs = [(a, by_seed_b[s]) for s, a in zip(fa["seed"], fa["value"].to_numpy(float), strict=True)
                 if s in by_seed_b and np.isfinite(a) and np.isfinite(by_seed_b[s])]
        va, vb = (np.array([p[k] for p in pairs], dtype=float) for k in (0, 1))
        sign = 1.0 if higher else -1.0
        scale, margin_test, spec = _measure_scale(comp.measure, metric, opts)
        if scale == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                test_diff = sign * (np.log(va) - np.log(vb))
            test_diff = test_diff[np.isfinite(test_diff)]
        else:
            test_diff = sign * (va - vb)
        bar = bar_of.get(key)
        testable = bool(bar["testable"]) if bar is not None else False
        reason = "" if testable else (bar["reason"] if bar is not None else "no learning bar for this setting")
        ca, cb = _status_counts(fa), _status_counts(fb)
        res = paired_test(test_diff, margin_test)
        ref = abs(float(vb.mean())) if len(vb) else np.nan
        row = dict(
            comparison=comp.name, measure=comp.measure, **setting, scale=fa["scale"].iloc[0], task=fa["task"].iloc[0],
            metric=metric, split=fa["split"].iloc[0], higher_is_better=higher, norm_a=comp.a[0], stats_a=comp.a[1],
            norm_b=comp.b[0], stats_b=comp.b[1], **{f"{k}_a": v for k, v in ca.items()},
            **{f"{k}_b": v for k, v in cb.items()}, testable=testable, not_testable_reason=reason,
            diff_mean=float(np.mean(sign * (va - vb))) if len(va) else np.nan,
            diff_std=float(np.std(sign * (va - vb), ddof=1)) if len(va) >= 2 else np.nan,
            test_scale=scale, margin=np.nan if spec is None else float(spec["value"]), margin_test=margin_test,
            **res)
        row["rel_effect"], row["rel_ci_low"], row["rel_ci_high"] = (
            _relative(row[k], scale, ref) for k in ("estimate", "ci_low", "ci_high"))
        rows.append(row)
    return rows


def _relative(x: float, scale: str, ref: float) -> float:
    """A test-scale number as a fraction of the reference: exp(x) - 1 on the log scale, x / |mean_b| else."""
    if not math.isfinite(x):
        return np.nan
    if scale == "log":
        return math.expm1(x)
    if scale == "log10":
        return 10.0**x - 1.0
    return x / ref if ref else np.nan


def holm(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p of every test within each family (config × comparison × measure), over its
    testable settings with a test; the minimum detectable effect at α / family size."""
    out = comparisons.copy()
    out["family"] = out["config_name"] + "|" + out["comparison"] + "|" + out["measure"]
    for t in P_TESTS:
        out[f"p_holm_{t}"] = np.nan
    out["holm_m"] = 0
    for _, idx in out.groupby("family").groups.items():
        rows = out.loc[idx]
        tested = rows[rows["testable"] & rows["p_two_sided"].notna()]
        out.loc[idx, "holm_m"] = len(tested)
        for t in P_TESTS:
            p = tested[f"p_{t}"].dropna()
            if len(p):
                # statsmodels' Holm branch calls gc.collect(); freezing the live objects keeps that cheap
                gc.freeze()
                try:
                    out.loc[p.index, f"p_holm_{t}"] = multipletests(p.to_numpy(), alpha=ALPHA, method="holm")[1]
                finally:
                    gc.unfreeze()
    m = out["holm_m"].clip(lower=1)
    out["mde_alpha"] = ALPHA / m
    out["mde"] = [minimum_detectable_effect(int(n), sd, a) for n, sd, a in
                  zip(out["n_pairs"], out["estimate_sd"], out["mde_alpha"], strict=True)]
    ref = out["mean_b"].abs()
    out["mde_rel"] = [_relative(m, sc, r) for m, sc, r in zip(out["mde"], out["test_scale"], ref, strict=True)]
    out["p"], out["p_holm"] = out["p_two_sided"], out["p_holm_two_sided"]
    out["significant"] = (out["p_holm"] < ALPHA) & out["testable"]
    return out


def all_comparisons(obs: pd.DataFrame, opts: dict, bars: pd.DataFrame, batch_norms: list[str]) -> pd.DataFrame:
    rows = []
    for comp in comparisons_wanted(batch_norms):
        rows += compare(obs, comp, opts, bars)
    if not rows:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    return holm(pd.DataFrame(rows))[COMPARISON_COLUMNS]


# --- TID per layer, per run and over training --------------------------------------------------------


def _forward_order(frame: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """``frame`` sorted by ``group`` and then modules in forward order, with ``order`` = 0, 1, ... per group."""
    keys = [tuple(r) + (module_key(m),) for r, m in zip(frame[group].astype(str).to_numpy(), frame["module"],
                                                         strict=True)]
    frame = frame.iloc[sorted(range(len(frame)), key=keys.__getitem__)].reset_index(drop=True)
    frame["order"] = frame.groupby(group, dropna=False).cumcount()
    return frame


def tid_layers(tidy: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run × TID kind × norm module: the probe's components and what is derived from them."""
    dec, runs = tidy["tid_decomposition"], tidy["runs"]
    dec = dec[dec["kind"].isin(TID_KINDS)]
    if dec.empty:
        return pd.DataFrame(columns=TID_LAYER_COLUMNS)
    keys = ID_COLUMNS + ["kind", "module", "layer", "position", "method"]
    wide = dec.groupby(keys + ["component"], dropna=False)["value"].mean().unstack("component").reset_index()
    wide.columns.name = None
    info = dec.groupby(["run_id", "kind", "module"], as_index=False).agg(
        probe_mode=("probe_mode", "first"), momentum=("momentum", "first"),
        tokens_per_batch=("tokens_per_batch", "max"), n_batches=("n_batches", "max"))
    wide = wide.merge(info, on=["run_id", "kind", "module"], how="left")
    for comp in ("observed", "batch_vs_population", "floor_token", "floor_sentence", "floor_theory", "lag"):
        if comp not in wide.columns:
            wide[comp] = np.nan
    wide = wide.merge(runs[["run_id", "status", "momentum"]].rename(columns={"momentum": "run_momentum"}),
                      on="run_id", how="left")
    wide["momentum"] = pd.to_numeric(wide["momentum"], errors="coerce").fillna(wide["run_momentum"])
    # the positions the claims summarise: a run's own BN modules; a norm without batch statistics (shadow
    # statistics of its input) at the positions its setting's BN-family runs have
    bn_positions = wide[wide["method"] == "batch_stats"].groupby(SETTING)["module"].agg(set).to_dict()
    wide["in_summary"] = [
        m == "batch_stats" or module in bn_positions.get(tuple(r), set())
        for m, module, r in zip(wide["method"], wide["module"], wide[SETTING].to_numpy(), strict=True)]
    wide = _forward_order(wide, ["run_id", "kind"])
    first = wide[wide["in_summary"]].groupby(["run_id", "kind"])["order"].transform("min")
    wide["is_first"] = False
    wide.loc[first.index, "is_first"] = wide.loc[first.index, "order"] == first
    b, ft, fs = wide["batch_vs_population"], wide["floor_token"], wide["floor_sentence"]
    wide["floor_ref_kind"] = np.where(fs.notna(), "sentence", np.where(ft.notna(), "token", ""))
    wide["floor_ref"] = fs.fillna(ft)
    wide["ratio_token"] = b / ft.where(ft > 0)
    wide["ratio_sentence"] = b / fs.where(fs > 0)
    wide["ratio_ref"] = b / wide["floor_ref"].where(wide["floor_ref"] > 0)
    wide["excess_sentence"] = np.sqrt(np.clip(b**2 - fs**2, 0, None)).where(b.notna() & fs.notna())
    wide["excess_token"] = np.sqrt(np.clip(b**2 - ft**2, 0, None)).where(b.notna() & ft.notna())
    alpha = wide["momentum"].where((wide["momentum"] > 0) & (wide["momentum"] < 2))
    wide["lag_noise"] = np.sqrt(alpha / (2 - alpha)) * wide["floor_ref"]
    wide["lag_ratio"] = wide["lag"] / wide["lag_noise"].where(wide["lag_noise"] > 0)
    return wide[TID_LAYER_COLUMNS]


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def tid_profile(layers: pd.DataFrame) -> pd.DataFrame:
    """Per setting × norm × kind × module × quantity: mean ± sd over completed seeds (the per-layer figure)."""
    ok = layers[(layers["status"] == "completed") & layers["in_summary"]]
    if ok.empty:
        return pd.DataFrame(columns=TID_PROFILE_COLUMNS)
    long = ok.melt(id_vars=SETTING + ["scale", "task", "norm", "kind", "module", "order", "method"],
                   value_vars=LAYER_QUANTITIES, var_name="quantity", value_name="value").dropna(subset=["value"])
    by = SETTING + ["scale", "task", "norm", "kind", "module", "method", "quantity"]
    out = long.groupby(by).agg(order=("order", "min"), mean=("value", "mean"), sd=("value", _sample_std),
                               n=("value", "count")).reset_index()
    return out[TID_PROFILE_COLUMNS]


def _window_values(steps: np.ndarray, values: np.ndarray, start: float, last: float, early: float, late: float):
    span = last - start
    e_to, l_from = start + early * span, last - late * span
    e = values[(steps >= start) & (steps <= e_to)]
    lt = values[(steps >= l_from) & (steps <= last)]
    return e, lt, e_to, l_from


def online_summaries(tidy: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run × kind × summary × step: the online TID summarised over the run's modules."""
    tid = tidy["tid"]
    tid = tid[(tid["method"] == "online") & tid["kind"].isin(TID_KINDS)] if len(tid) else tid
    if tid.empty:
        return pd.DataFrame(columns=["run_id", "kind", "summary", "step", "value"])
    tid = tid.assign(_key=tid["module"].map(module_key))
    first_module = tid.sort_values("_key").groupby(["run_id", "kind"])["module"].first().rename("first_module")
    tid = tid.merge(first_module, on=["run_id", "kind"])
    g = tid.groupby(["run_id", "kind", "step"])["value"]
    parts = [g.max().rename("max"), g.mean().rename("mean"),
             tid[tid["module"] == tid["first_module"]].groupby(["run_id", "kind", "step"])["value"].mean()
             .rename("first")]
    wide = pd.concat(parts, axis=1).reset_index()
    return wide.melt(id_vars=["run_id", "kind", "step"], value_vars=list(SUMMARIES), var_name="summary",
                     value_name="value")


def growth(online: pd.DataFrame, runs: pd.DataFrame, windows: dict) -> pd.DataFrame:
    """Per run × kind × summary: online TID over the early and late windows (declared), after burn-in
    (``burn_in`` / momentum steps) and the learning-rate warm-up; ``growth = late / early``."""
    info = runs.set_index("run_id")[["momentum", "warmup_steps"]].to_dict()
    rows = []
    online = online.dropna(subset=["value"]).sort_values(["run_id", "kind", "summary", "step"])
    for (run_id, kind, summary), g in online.groupby(["run_id", "kind", "summary"], sort=False):
        steps, values = g["step"].to_numpy(float), g["value"].to_numpy(float)
        row = dict(run_id=run_id, kind=kind, summary=summary, online_steps=len(g),
                   **{c: np.nan for c in GROWTH_COLUMNS if c not in ("online_steps", "growth_note")}, growth_note="")
        momentum, warmup = _number(info["momentum"].get(run_id)), _number(info["warmup_steps"].get(run_id))
        if not momentum > 0:
            row["growth_note"] = "momentum unknown: the burn-in of the running statistics is undefined"
        elif not math.isfinite(warmup):
            row["growth_note"] = "learning-rate warm-up unknown"
        elif len(g):
            start = max(windows["burn_in"] / momentum, float(warmup))
            last = float(steps.max())
            row["window_start"] = start
            if start >= last:
                row["growth_note"] = f"run too short: its last record (step {last:g}) precedes burn-in and warm-up"
            else:
                e, lt, e_to, l_from = _window_values(steps, values, start, last, windows["early"], windows["late"])
                row.update(early_from=start, early_to=e_to, late_from=l_from, late_to=last)
                if len(e) and len(lt):
                    row["early"], row["late"] = float(e.mean()), float(lt.mean())
                    row["growth"] = row["late"] / row["early"] if row["early"] > 0 else np.nan
                else:
                    row["growth_note"] = "no online TID record inside the early or late window"
        rows.append(row)
    return pd.DataFrame(rows, columns=["run_id", "kind", "summary"] + GROWTH_COLUMNS)


def tid_summary(layers: pd.DataFrame, online: pd.DataFrame, runs: pd.DataFrame, opts: dict) -> pd.DataFrame:
    """Per run × kind × summary (first BN layer, maximum, mean over layers): each quantity summarised
    over the summarised layers on its own, beside the online growth."""
    sel = layers[layers["in_summary"]]
    parts = []
    if len(sel):
        g = sel.groupby(["run_id", "kind"])
        agg = {"first": sel[sel["is_first"]].groupby(["run_id", "kind"])[LAYER_QUANTITIES].mean(),
               "max": g[LAYER_QUANTITIES].max(), "mean": g[LAYER_QUANTITIES].mean()}
        meta = g.agg(n_layers=("module", "nunique"), probe_mode=("probe_mode", "first"),
                     floor_ref_kind=("floor_ref_kind", "first"))
        for summary, frame in agg.items():
            parts.append(frame.join(meta).assign(summary=summary).reset_index())
    probe = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id", "kind", "summary"])
    grown = growth(online, runs, opts["tid_windows"])
    out = probe.merge(grown, on=["run_id", "kind", "summary"], how="outer")
    if out.empty:
        return pd.DataFrame(columns=TID_SUMMARY_COLUMNS)
    out = runs[ID_COLUMNS + ["status"]].merge(out, on="run_id")
    out["declared"] = out["summary"] == opts["tid_summary"]
    for col in TID_SUMMARY_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    numeric = LAYER_QUANTITIES + [c for c in GROWTH_COLUMNS if c not in ("online_steps", "growth_note")]
    out[numeric] = out[numeric].apply(pd.to_numeric, errors="coerce")
    out["online_steps"] = out["online_steps"].fillna(0).astype(int)
    out["growth_note"] = out["growth_note"].fillna("no online TID record for this run")
    return out[TID_SUMMARY_COLUMNS].sort_values(["run_id", "kind", "summary"]).reset_index(drop=True)


def _curve_table(frame: pd.DataFrame, runs: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean ± sd over completed seeds per step (``group = seeds``); every diverged run on its own
    (``group`` = its run id)."""
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.merge(runs[["run_id", "status"]], on="run_id")
    ok = frame[frame["status"] == "completed"]
    by = SETTING + ["scale", "task", "norm"] + keys + ["step"]
    seeds = ok.groupby(by, dropna=False)["value"].agg(mean="mean", sd="std", n="count").reset_index()
    seeds["group"] = "seeds"
    bad = frame[frame["status"] == "diverged"].groupby(by + ["run_id"], dropna=False)["value"].mean().reset_index()
    bad = bad.rename(columns={"value": "mean", "run_id": "group"}).assign(sd=np.nan, n=1)
    return pd.concat([seeds, bad], ignore_index=True)[columns]


def tid_curves(tidy: dict[str, pd.DataFrame], online: pd.DataFrame) -> pd.DataFrame:
    if online.empty:
        return pd.DataFrame(columns=TID_CURVE_COLUMNS)
    frame = online.merge(tidy["runs"][ID_COLUMNS], on="run_id")
    return _curve_table(frame, tidy["runs"], ["kind", "summary"], TID_CURVE_COLUMNS)


def curves_summary(tidy: dict[str, pd.DataFrame]) -> pd.DataFrame:
    curves = tidy["curves"]
    loss = curves[curves["metric"].isin(["loss", "task_loss"]) & curves["kind"].isin(["train", "valid"])]
    return _curve_table(loss, tidy["runs"], ["kind", "metric"], CURVE_COLUMNS)


# --- claim A4: TID vs BN - LN ------------------------------------------------------------------------


def spearman(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """Spearman's ρ with a permutation p-value (exact up to :data:`EXACT_PERMUTATION_MAX_N` points), a
    Fisher-z interval on the ranks, and the smallest |ρ| a one-sided test at α detects with power 0.8."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = dict(rho=np.nan, p=np.nan, p_method="", ci_low=np.nan, ci_high=np.nan, ci_method="", mde_rho=np.nan,
               note="")
    if n < 3:
        out["note"] = f"{n} point(s): a rank correlation needs at least 3"
        return out
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        out["note"] = "a constant column: the rank correlation is undefined"
        return out
    out["rho"] = float(sps.spearmanr(x, y).statistic)
    exact = n <= EXACT_PERMUTATION_MAX_N
    rx = sps.rankdata(x)

    def rho(b, axis=-1):  # Spearman's ρ = Pearson's r of the ranks, vectorised over permutations of y
        return sps.pearsonr(np.broadcast_to(rx, b.shape), sps.rankdata(b, axis=axis), axis=axis).statistic

    # permuting y alone against fixed x enumerates every pairing once (n! of them)
    res = sps.permutation_test((y,), rho, permutation_type="pairings", vectorized=True,
                               n_resamples=np.inf if exact else N_PERMUTATIONS,
                               alternative="two-sided", rng=np.random.default_rng(seed))
    out["p"] = float(res.pvalue)
    out["p_method"] = (f"exact permutation ({math.factorial(n)} pairings)" if exact
                       else f"Monte Carlo permutation ({N_PERMUTATIONS} pairings)")
    if n > 3:
        ci = sps.pearsonr(sps.rankdata(x), sps.rankdata(y)).confidence_interval(CONFIDENCE)
        out["ci_low"], out["ci_high"] = float(ci.low), float(ci.high)
        out["ci_method"] = "Fisher z on the ranks"
        z = NormalIndPower().solve_power(effect_size=None, nobs1=n - 3, alpha=ALPHA, power=POWER, ratio=0,
                                         alternative="larger")
        out["mde_rho"] = float(np.tanh(z))
    return out


def correlations(tsum: pd.DataFrame, comps: pd.DataFrame, bars: pd.DataFrame, opts: dict) -> tuple[pd.DataFrame,
                                                                                                   pd.DataFrame]:
    """Claim A4 per config × placement × TID kind: BN's TID (the declared summary; the paper's observed
    TID, and its ratio to the floor) against BN − LN (relative, + = BN better), over testable settings."""
    declared = opts["tid_summary"]
    gaps = comps[(comps["comparison"] == "bn-ln") & (comps["measure"] == "primary")]
    gaps = gaps.set_index(SETTING)
    bn = tsum[(tsum["norm"] == "bn") & (tsum["status"] == "completed") & (tsum["summary"] == declared)]
    bar = bars.set_index(SETTING)
    points, rows = [], []
    for measure in ("observed", "ratio_ref"):
        per = bn.dropna(subset=[measure]).groupby(SETTING + ["kind"]).agg(
            tid=(measure, "mean"), tid_sd=(measure, _sample_std), tid_n=(measure, "count"),
            floor_ref=("floor_ref", "mean"), floor_ref_kind=("floor_ref_kind", "first"),
            scale=("scale", "first"), task=("task", "first")).reset_index()
        for (config, placement, kind), g in per.groupby(["config_name", "placement", "kind"]):
            pts = []
            for r in g.itertuples():
                key = (r.config_name, r.dataset, r.placement)
                gap = gaps.loc[key] if key in gaps.index else None
                b = bar.loc[key] if key in bar.index else None
                reason = ""
                if b is None or not bool(b["testable"]):
                    reason = "not testable: " + ("no learning bar" if b is None else str(b["reason"]))
                elif gap is None or not (gap["n_pairs"] > 0) or not math.isfinite(gap["rel_effect"]):
                    reason = "no BN and LN seed pair"
                pts.append(dict(config_name=config, scale=r.scale, task=r.task, dataset=r.dataset, placement=placement,
                                kind=kind, tid_summary=declared, tid_measure=measure, tid=r.tid, tid_sd=r.tid_sd,
                                tid_n=r.tid_n, floor_ref=r.floor_ref, floor_ref_kind=r.floor_ref_kind,
                                tid_over_floor=r.tid / r.floor_ref if r.floor_ref and r.floor_ref > 0 else np.nan,
                                gap_rel=np.nan if gap is None else gap["rel_effect"],
                                gap_rel_ci_low=np.nan if gap is None else gap["rel_ci_low"],
                                gap_rel_ci_high=np.nan if gap is None else gap["rel_ci_high"],
                                gap_n=0 if gap is None else int(gap["n_pairs"]), included=not reason, reason=reason))
            frame = pd.DataFrame(pts)
            inc = frame[frame["included"]].sort_values("dataset")
            frame["rank_tid"] = inc["tid"].rank()
            frame["rank_gap"] = inc["gap_rel"].rank()
            points.append(frame)
            exc = frame[~frame["included"]]
            rows.append(dict(config_name=config, scale=g["scale"].iloc[0], placement=placement, kind=kind,
                             tid_summary=declared, tid_measure=measure,
                             gap="BN − LN, relative (+ = BN better)", expected_sign="negative",
                             n_settings=len(inc), settings=";".join(inc["dataset"]), n_excluded=len(exc),
                             excluded=";".join(f"{d} ({w})" for d, w in
                                               zip(exc["dataset"], exc["reason"], strict=True)),
                             **spearman(inc["tid"].to_numpy(), inc["gap_rel"].to_numpy())))
    corr = pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
    pts = pd.concat(points, ignore_index=True) if points else pd.DataFrame(columns=TID_GAP_COLUMNS)
    return corr, pts[TID_GAP_COLUMNS] if len(pts) else pd.DataFrame(columns=TID_GAP_COLUMNS)


# --- conditioning (claim A9) -------------------------------------------------------------------------


def a9_measure(cond: pd.DataFrame) -> tuple[str, bool]:
    """The conditioning rows A9 uses: the centred covariance of the following linear layers' input
    (site output) where the probe measured it, else the old measure (the norm's input, uncentred)."""
    if len(cond) and ((cond["site"] == "output") & cond["centred"].map(bool)).any():
        return "output", True
    return "input", False


def conditioning(tidy: dict[str, pd.DataFrame], layers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per module summary, per run mean log10 over the A9 positions).  A9 positions: the modules where
    the setting's BN-family runs normalise with batch statistics (the LN model at the same positions);
    without probe records, the encoder's modules."""
    cond = tidy["conditioning"]
    if cond.empty:
        return pd.DataFrame(columns=CONDITIONING_SUMMARY_COLUMNS), pd.DataFrame(columns=["run_id", "measure", "value"])
    site, centred = a9_measure(cond)
    bn_pos = layers[layers["method"] == "batch_stats"].groupby(SETTING)["module"].agg(set).to_dict()
    cond = cond.merge(tidy["runs"][["run_id", "status"]], on="run_id")
    cond = cond[cond["status"] == "completed"].copy()
    cond["log10"] = np.log10(cond["value"].where(cond["value"] > 0))
    encoder = cond["module"].astype(str).str.startswith("encoder.")
    keys = list(zip(cond["config_name"], cond["dataset"], cond["placement"], strict=True))
    cond["a9_position"] = [m in bn_pos[k] if k in bn_pos else enc for m, k, enc in
                           zip(cond["module"], keys, encoder, strict=True)]
    cond["a9_measure"] = (cond["site"] == site) & (cond["centred"].map(bool) == centred)
    summary = cond.groupby(SETTING + ["scale", "task", "norm", "module", "measure", "site", "centred", "a9_position",
                                      "a9_measure"], dropna=False).agg(
        n=("log10", "count"), mean_log10=("log10", "mean"), sd_log10=("log10", _sample_std),
        mean=("value", "mean"), sd=("value", _sample_std)).reset_index()
    summary = _forward_order(summary, SETTING + ["norm", "measure", "site"])
    per_run = cond[cond["a9_position"] & cond["a9_measure"]].groupby(["run_id", "measure"], as_index=False)[
        "log10"].mean().rename(columns={"log10": "value"})
    return summary[CONDITIONING_SUMMARY_COLUMNS], per_run


# --- runtime ---------------------------------------------------------------------------------------


def runtime(tidy: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per rule × dataset × norm: wall seconds (mean ± sd over seeds and placements), peak RSS, CPU time,
    and the ratio of mean wall time to LN's (the Snakemake benchmark files)."""
    bench = tidy.get("benchmarks")
    if bench is None or bench.empty:
        return pd.DataFrame(columns=RUNTIME_COLUMNS)
    agg = bench.groupby(["config_name", "scale", "rule", "dataset", "norm"]).agg(
        n=("s", "count"), s_mean=("s", "mean"), s_std=("s", _sample_std), max_rss_mb=("max_rss_mb", "mean"),
        cpu_time_s=("cpu_time_s", "mean")).reset_index()
    ln = agg[agg["norm"] == "ln"].set_index(["config_name", "rule", "dataset"])["s_mean"]
    key = pd.MultiIndex.from_frame(agg[["config_name", "rule", "dataset"]])
    agg["ratio_to_ln"] = agg["s_mean"].to_numpy() / ln.reindex(key).to_numpy()
    return agg[RUNTIME_COLUMNS]


# --- the command -------------------------------------------------------------------------------------


def compute(tidy: dict[str, pd.DataFrame], opts: dict | None = None) -> dict[str, pd.DataFrame]:
    """Every statistics table from the tidy tables and the declared analysis settings."""
    opts = analysis_options.with_defaults(opts)
    runs = tidy["runs"]
    layers = tid_layers(tidy)
    online = online_summaries(tidy)
    tsum = tid_summary(layers, online, runs, opts)
    cond_summary, cond_runs = conditioning(tidy, layers)
    obs = observations(tidy, tsum, cond_runs, opts["tid_summary"])
    bars = learning_bars(tidy, opts)
    batch_norms = sorted(set(runs.loc[runs["batch_stats"].astype(bool), "norm"]))
    comps = all_comparisons(obs, opts, bars, batch_norms)
    corr, points = correlations(tsum, comps, bars, opts)
    return dict(summary=summarise(obs), comparisons=comps, learning_bars=bars, tid_layers=layers,
                tid_summary=tsum, tid_profile=tid_profile(layers), tid_curves=tid_curves(tidy, online),
                curves_summary=curves_summary(tidy),
                correlations=corr, tid_gap=points, conditioning_summary=cond_summary, runtime=runtime(tidy))


def settings_record(tidy: dict[str, pd.DataFrame], opts: dict) -> dict:
    """What `analysis.json` holds: the declared settings, the statistical constants, the limitations."""
    opts = analysis_options.with_defaults(opts)
    cond = tidy.get("conditioning")
    site, centred = a9_measure(cond if cond is not None else pd.DataFrame(columns=["site", "centred"]))
    return {
        "declared": {k: opts[k] for k in analysis_options.DEFAULTS},
        "statistics": {"alpha": ALPHA, "power": POWER, "confidence": CONFIDENCE, "bootstrap_min_n": BOOTSTRAP_MIN_N,
                       "exact_permutation_max_n": EXACT_PERMUTATION_MAX_N,
                       "train_loss_metric": _train_loss_metric(tidy["curves"]),
                       "a9_site": site, "a9_centred": centred},
        "limitations": limitations(tidy),
    }


STATS_COLUMNS = {"summary": SUMMARY_COLUMNS, "comparisons": COMPARISON_COLUMNS, "learning_bars": LEARNING_BAR_COLUMNS,
                 "tid_layers": TID_LAYER_COLUMNS, "tid_summary": TID_SUMMARY_COLUMNS,
                 "tid_profile": TID_PROFILE_COLUMNS, "tid_curves": TID_CURVE_COLUMNS, "curves_summary": CURVE_COLUMNS,
                 "correlations": CORRELATION_COLUMNS, "tid_gap": TID_GAP_COLUMNS,
                 "conditioning_summary": CONDITIONING_SUMMARY_COLUMNS, "runtime": RUNTIME_COLUMNS}
assert tuple(STATS_COLUMNS) == STATS_TABLES


def read_stats(stats_dir: Path | None, optional: bool = False) -> dict[str, pd.DataFrame]:
    """The statistics tables; ``optional``: an absent file (or folder) is an empty table (the figures
    then say so), else an error naming the command that writes it."""
    out = {}
    for name in STATS_TABLES:
        path = Path(stats_dir) / f"{name}.csv" if stats_dir is not None else None
        if path is None or not path.is_file():
            if optional:
                out[name] = pd.DataFrame(columns=STATS_COLUMNS[name])
                continue
            raise FileNotFoundError(f"{path} does not exist; run `normlab stats` first")
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame(columns=STATS_COLUMNS[name])
        for col in ("higher_is_better", "significant", "testable", "passes", "declared", "in_summary", "is_first",
                    "included", "a9_position", "a9_measure", "centred", "relative"):
            if col in frame.columns:
                frame[col] = frame[col].map(lambda v: v if isinstance(v, bool) else str(v).lower() == "true")
        out[name] = frame
    return out


def read_settings(stats_dir: Path | None, optional: bool = False) -> dict:
    """``analysis.json``; ``optional``: the defaults (and a limitation saying so) when it is absent."""
    path = Path(stats_dir) / STATS_SETTINGS if stats_dir is not None else None
    if path is None or not path.is_file():
        if optional:
            record = settings_record({"curves": pd.DataFrame(columns=["metric"])}, None)
            record["limitations"] = ["no statistics (run `normlab stats`): nothing computed to draw"]
            return record
        raise FileNotFoundError(f"{path} does not exist; run `normlab stats` first")
    return json.loads(path.read_text())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tidy", required=True, type=Path, help="the tidy tables (results/tidy)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the statistics (results/stats)")
    parser.add_argument("--analysis", default=None,
                        help="the declared analysis settings: a JSON object, or a workflow config file whose "
                             "`analysis:` section is read (default: normlab.analysis.options.DEFAULTS)")


def main_stats(tidy_dir: Path, out: Path, opts: dict | None = None) -> dict[str, pd.DataFrame]:
    """Read the tidy tables, compute, write every statistics table and ``analysis.json``."""
    opts = analysis_options.with_defaults(opts)
    tidy = read_tidy(tidy_dir, (*TIDY_TABLES, BASELINES_TABLE), optional=(*UNCOMMITTED_TIDY_TABLES, BASELINES_TABLE))
    results = compute(tidy, opts)
    for name, frame in results.items():
        write_csv(frame, Path(out) / f"{name}.csv")
    record = settings_record(tidy, opts)
    atomic_write_text(Path(out) / STATS_SETTINGS, json.dumps(record, indent=1, default=str) + "\n")
    return results | {"_settings": record}


def run(args: argparse.Namespace) -> int:
    opts = analysis_options.load(args.analysis)
    results = main_stats(args.tidy, args.out, opts)
    record = results.pop("_settings")
    comps = results["comparisons"]
    testable = results["learning_bars"]["testable"]
    print(f"{len(comps)} comparisons, {int(testable.sum())} of {len(testable)} settings testable, "
          f"{len(results['correlations'])} correlations -> {args.out}")
    for note in record["limitations"]:
        print(f"limitation: {note}")
    return 0
