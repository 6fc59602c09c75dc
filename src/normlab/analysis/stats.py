"""``normlab stats``: seed statistics, paired comparisons and the TID–gap correlation (contract §5).

Every statistic comes from scipy/statsmodels:

* per setting (config_name, dataset, placement) and norm: mean ± sample std (ddof=1) and n
  (``summary.csv``);
* paired comparisons of two norms, paired by seed (``comparisons.csv``): the difference is oriented so
  that **positive means the first norm is better** (``higher_is_better``; for ppl and losses lower is
  better); ``scipy.stats.ttest_rel`` is the test the verdicts use (``test = ttest_rel``), and
  ``scipy.stats.wilcoxon`` is reported beside it where n ≥ :data:`WILCOXON_MIN_N` (below that the
  exact two-sided signed-rank test cannot reach p < 0.05); a percentile bootstrap CI
  (``scipy.stats.bootstrap``) of the mean paired difference; Holm's correction
  (``statsmodels.stats.multitest.multipletests``) across the settings of one comparison family
  (config × comparison × measure);
* claim A1: batch-statistics vs population evaluation of the same batch-statistics model, paired by seed;
* ``tid_summary.csv``: per run, TID early and late in training (online) and at the end beside its
  noise floor (the probe's decomposition); ``correlations.csv``: Spearman's ρ across datasets of the
  end-of-training BN TID with BN's relative deficit to LN, with a bootstrap CI (claim A4).

Missing and diverged runs are counted in every row and excluded from the tests; a setting with fewer
than two complete pairs, or with differences of zero variance, gets no test (``note`` says why).
"""

from __future__ import annotations

import argparse
import gc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from .tidy import ID_COLUMNS, read_tidy, write_csv

ALPHA = 0.05
WILCOXON_MIN_N = 6
N_RESAMPLES = 9999
N_CORR_RESAMPLES = 1999
CONFIDENCE = 0.95
SETTING = ["config_name", "dataset", "placement"]
BATCH_STAT_NORMS = ("bn", "rbn", "powernorm", "pn_vanilla")

# (first, second): positive difference = first better.
COMPARISONS = [("rbn", "ln"), ("rbn", "bn"), ("bn", "ln"), ("powernorm", "ln"), ("ln_simple", "ln"),
               ("detachnorm", "ln_simple"), ("adanorm", "ln"), ("none", "ln")]
LOSS_COMPARISONS = [("bn", "ln"), ("ln", "ln_simple"), ("ln", "adanorm")]  # A1 (training loss), B4
TID_COMPARISONS = [("rbn", "bn")]  # A6
CONDITIONING_COMPARISONS = [("rbn", "ln"), ("bn", "ln"), ("rbn", "bn")]  # A9

COMPARISON_COLUMNS = [
    "family", "comparison", "measure", "config_name", "scale", "task", "dataset", "placement", "metric",
    "split", "higher_is_better", "norm_a", "stats_a", "norm_b", "stats_b",
    "n_a", "mean_a", "std_a", "n_missing_a", "n_diverged_a", "n_b", "mean_b", "std_b", "n_missing_b",
    "n_diverged_b", "n_pairs", "diff_mean", "diff_std", "ci_low", "ci_high", "t_stat", "p_ttest",
    "p_wilcoxon", "test", "p", "p_holm", "holm_m", "significant", "note",
]
SUMMARY_COLUMNS = ["config_name", "scale", "task", "dataset", "placement", "norm", "measure", "metric", "split",
                   "stats", "higher_is_better", "n", "n_runs", "n_completed", "n_missing", "n_diverged",
                   "mean", "std"]
TID_SUMMARY_COLUMNS = ID_COLUMNS + [
    "status", "kind", "early", "late", "growth", "online_steps", "observed", "tid_source", "floor",
    "floor_source", "structure", "lag", "excess_ratio", "tokens_per_batch"]
CORRELATION_COLUMNS = ["config_name", "scale", "placement", "kind", "tid_measure", "tid_source", "gap",
                       "n_datasets", "datasets", "rho", "p", "ci_low", "ci_high", "note"]


# --- per-run measures ------------------------------------------------------------------------------


def _runs_measure(runs: pd.DataFrame, values: pd.DataFrame, measure: str, metric_col: str | None = None,
                  metric: str | None = None, higher: bool | None = None, split: str = "test",
                  stats: str = "population") -> pd.DataFrame:
    """Every run (missing and diverged included, value NaN) with one value per run of ``measure``."""
    base = runs[ID_COLUMNS + ["status", "primary_metric", "higher_is_better"]].copy()
    v = values[["run_id", "value"] + ([metric_col] if metric_col else [])]
    out = base.merge(v, on="run_id", how="left")
    out["measure"], out["split"], out["stats"] = measure, split, stats
    out["metric"] = out[metric_col] if metric_col else metric
    out["metric"] = out["metric"].fillna(out["primary_metric"] if metric is None else metric)
    if higher is not None:
        out["higher_is_better"] = higher
    out.loc[out["status"] != "completed", "value"] = np.nan
    return out.drop(columns=[metric_col] if metric_col and metric_col != "metric" else [])


def observations(tidy: dict[str, pd.DataFrame], tid_summary: pd.DataFrame) -> pd.DataFrame:
    """One row per run × measure: the values that the summaries and comparisons use."""
    runs, scores, curves = tidy["runs"], tidy["scores"], tidy["curves"]
    parts = []
    for stats_name in ("population", "batch_stats"):
        sel = scores[(scores["split"] == "test") & (scores["stats"] == stats_name) & scores["primary"]]
        part = _runs_measure(runs, sel, "primary", metric_col="metric", stats=stats_name)
        if stats_name == "batch_stats":  # only models that have batch statistics
            part = part[part["norm"].isin(sel["norm"].unique()) | part["norm"].isin(BATCH_STAT_NORMS)]
        parts.append(part)
    valid_loss = scores[(scores["split"] == "valid") & (scores["stats"] == "population")
                        & (scores["metric"] == "loss")]
    parts.append(_runs_measure(runs, valid_loss, "valid_loss", metric="loss", higher=False, split="valid"))
    train = curves[(curves["kind"] == "train") & (curves["metric"] == "loss")].sort_values("step")
    last_train = train.groupby("run_id", as_index=False).last()  # the last logged window of training
    parts.append(_runs_measure(runs, last_train, "final_train_loss", metric="loss", higher=False, split="train"))
    end_tid = tid_summary[tid_summary["kind"] == "mean_tid"].rename(columns={"observed": "value"})
    parts.append(_runs_measure(runs, end_tid[["run_id", "value"]], "end_mean_tid", metric="mean_tid",
                               higher=False, split="train"))
    cond = tidy["conditioning"].copy()
    if len(cond):
        # condition numbers span orders of magnitude: average log10 over the run's norm modules
        cond["value"] = np.log10(cond["value"].where(cond["value"] > 0))
        per_run = cond.groupby(["run_id", "measure"], as_index=False)["value"].mean()
        for measure in ("c50", "c80", "cmax"):
            sel = per_run[per_run["measure"] == measure]
            parts.append(_runs_measure(runs, sel[["run_id", "value"]], f"log10_{measure}",
                                       metric=f"log10_{measure}", higher=False, split="probe"))
    obs = pd.concat(parts, ignore_index=True)
    return obs


# --- summaries -------------------------------------------------------------------------------------


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
        n=("value", "count"),
        n_runs=("run_id", "count"),
        n_completed=("status", lambda s: int((s == "completed").sum())),
        n_missing=("status", lambda s: int((s == "missing").sum())),
        n_diverged=("status", lambda s: int((s == "diverged").sum())),
        mean=("value", "mean"),
        std=("value", _sample_std),
    ).reset_index()
    # a measure a norm does not have (no TID for LN) is no cell; the primary metric always is one
    out = out[(out["n"] > 0) | (out["measure"] == "primary") | (out["n_completed"] < out["n_runs"])]
    return out[SUMMARY_COLUMNS].reset_index(drop=True)


# --- paired comparisons ----------------------------------------------------------------------------


def paired_test(diff: np.ndarray, seed: int = 0) -> dict:
    """Tests and CI of paired differences (already oriented); NaNs where n or the data do not allow."""
    diff = np.asarray(diff, dtype=float)
    n = len(diff)
    out = dict(n_pairs=n, diff_mean=float(diff.mean()) if n else np.nan,
               diff_std=float(np.std(diff, ddof=1)) if n >= 2 else np.nan,
               ci_low=np.nan, ci_high=np.nan, t_stat=np.nan, p_ttest=np.nan, p_wilcoxon=np.nan,
               test="ttest_rel", note="")
    if n < 2:
        out["note"] = f"{n} complete pair(s): no test"
        return out
    boot = sps.bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES,
                         method="percentile", rng=np.random.default_rng(seed))
    out["ci_low"], out["ci_high"] = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    if np.ptp(diff) == 0:
        out["note"] = "the differences have zero variance: the t-test is undefined"
        return out
    t = sps.ttest_rel(diff, np.zeros_like(diff))
    out["t_stat"], out["p_ttest"] = float(t.statistic), float(t.pvalue)
    if n >= WILCOXON_MIN_N and np.any(diff != 0):
        out["p_wilcoxon"] = float(sps.wilcoxon(diff).pvalue)
    return out


def _status_counts(frame: pd.DataFrame) -> dict:
    return dict(n=int(frame["value"].notna().sum()), mean=frame["value"].mean(), std=_sample_std(frame["value"]),
                n_missing=int((frame["status"] == "missing").sum()),
                n_diverged=int((frame["status"] == "diverged").sum()))


def compare(obs: pd.DataFrame, measure: str, a: tuple[str, str], b: tuple[str, str], name: str) -> list[dict]:
    """``a`` vs ``b`` ((norm, stats) each) on ``measure``, per setting, paired by seed."""
    sel = obs[obs["measure"] == measure]
    side_a = sel[(sel["norm"] == a[0]) & (sel["stats"] == a[1])]
    side_b = sel[(sel["norm"] == b[0]) & (sel["stats"] == b[1])]
    rows = []
    groups_b = dict(iter(side_b.groupby(SETTING)))
    for key, fa in side_a.groupby(SETTING):
        if key not in groups_b:
            continue
        fb, setting = groups_b[key], dict(zip(SETTING, key, strict=True))
        metrics = set(fa["metric"].dropna()) | set(fb["metric"].dropna())
        if len(metrics) > 1:
            raise ValueError(f"{name} on {dict(setting)}: the two sides report different metrics {metrics}")
        higher = bool(fa["higher_is_better"].iloc[0])
        pairs = fa[["seed", "value"]].merge(fb[["seed", "value"]], on="seed", suffixes=("_a", "_b")).dropna()
        sign = 1.0 if higher else -1.0
        diff = sign * (pairs["value_a"].to_numpy() - pairs["value_b"].to_numpy())
        ca, cb = _status_counts(fa), _status_counts(fb)
        row = dict(
            comparison=name, measure=measure, **{k: setting[k] for k in SETTING},
            scale=fa["scale"].iloc[0], task=fa["task"].iloc[0], metric=next(iter(metrics), None),
            split=fa["split"].iloc[0], higher_is_better=higher, norm_a=a[0], stats_a=a[1], norm_b=b[0],
            stats_b=b[1], **{f"{k}_a": v for k, v in ca.items()}, **{f"{k}_b": v for k, v in cb.items()},
            **paired_test(diff),
        )
        rows.append(row)
    return rows


def holm(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p within each family (config × comparison × measure), over its tested settings."""
    out = comparisons.copy()
    out["family"] = out["config_name"] + "|" + out["comparison"] + "|" + out["measure"]
    out["p"] = out["p_ttest"]
    out["p_holm"], out["holm_m"] = np.nan, 0
    for _, idx in out.groupby("family").groups.items():
        p = out.loc[idx, "p"]
        tested = p.dropna()
        if len(tested):
            # statsmodels' Holm branch calls gc.collect(); freezing the live objects keeps that cheap
            gc.freeze()
            try:
                adjusted = multipletests(tested.to_numpy(), alpha=ALPHA, method="holm")[1]
            finally:
                gc.unfreeze()
            out.loc[tested.index, "p_holm"] = adjusted
        out.loc[idx, "holm_m"] = len(tested)
    out["significant"] = out["p_holm"] < ALPHA
    return out


def all_comparisons(obs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    pop = "population"
    for x, y in COMPARISONS:
        rows += compare(obs, "primary", (x, pop), (y, pop), f"{x}-{y}")
    for x, y in LOSS_COMPARISONS:
        for measure in ("final_train_loss", "valid_loss"):
            rows += compare(obs, measure, (x, pop), (y, pop), f"{x}-{y}")
    for x, y in TID_COMPARISONS:
        rows += compare(obs, "end_mean_tid", (x, pop), (y, pop), f"{x}-{y}")
    for x, y in CONDITIONING_COMPARISONS:
        for m in ("c50", "c80", "cmax"):
            rows += compare(obs, f"log10_{m}", (x, pop), (y, pop), f"{x}-{y}")
    for norm in sorted(obs.loc[obs["stats"] == "batch_stats", "norm"].unique()):  # claim A1
        rows += compare(obs, "primary", (norm, "batch_stats"), (norm, pop), f"{norm}:batch_stats-population")
    if not rows:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    return holm(pd.DataFrame(rows))[COMPARISON_COLUMNS]


# --- TID per run and its correlation with the BN-LN gap --------------------------------------------


def _module_mean(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.groupby(keys, as_index=False)["value"].mean()


def tid_summary(tidy: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run and TID kind (mean_tid, var_tid), averaged over the run's batch-statistics modules:

    * ``early``/``late``: online TID averaged over the first / last quarter of the recorded steps,
      ``growth = late / early`` (claims A2, A3);
    * ``observed``: end-of-training TID, from the probe's decomposition (component ``observed``,
      ``tid_source = decomposition``), else the engine's end-of-training probe (``engine_probe``),
      else the last online record (``online_last``);
    * ``floor``: the measured i.i.d. sampling floor (``floor_source = measured``), else
      ``floor_theory`` / ``1/√tokens_per_batch`` (mean TID only, ``theory``); ``structure``, ``lag``:
      the decomposition's other components; ``excess_ratio = observed / floor``.
    """
    runs, tid, dec = tidy["runs"], tidy["tid"], tidy["tid_decomposition"]
    dec = dec[dec["method"] != "shadow"]
    base = runs[ID_COLUMNS + ["status", "tokens_per_batch"]]
    out = []
    for kind in ("mean_tid", "var_tid"):
        online = tid[(tid["method"] == "online") & (tid["kind"] == kind)]
        per_step = _module_mean(online, ["run_id", "step"]).sort_values(["run_id", "step"])
        g = per_step.groupby("run_id")["value"]
        quarter = g.transform(lambda v: max(1, len(v) // 4))
        position = g.cumcount()
        n = g.transform("size")
        online_sum = pd.DataFrame({
            "early": per_step["value"].where(position < quarter).groupby(per_step["run_id"]).mean(),
            "late": per_step["value"].where(position >= n - quarter).groupby(per_step["run_id"]).mean(),
            "online_last": g.last(), "online_steps": g.size()}).reset_index()
        probe = _module_mean(tid[(tid["method"] == "probe") & (tid["kind"] == kind)], ["run_id"])
        comp = _module_mean(dec[dec["kind"] == kind], ["run_id", "component"]).pivot(
            index="run_id", columns="component", values="value")
        comp = comp.reindex(columns=["observed", "floor", "floor_theory", "structure", "lag"]).reset_index()
        t = (base.merge(online_sum, on="run_id", how="left")
             .merge(probe.rename(columns={"value": "engine_probe"}), on="run_id", how="left")
             .merge(comp, on="run_id", how="left"))
        t["kind"] = kind
        t["tid_source"] = np.select(
            [t["observed"].notna(), t["engine_probe"].notna(), t["online_last"].notna()],
            ["decomposition", "engine_probe", "online_last"], "")
        t["observed"] = t["observed"].fillna(t["engine_probe"]).fillna(t["online_last"])
        theory = t["floor_theory"].fillna(1 / np.sqrt(t["tokens_per_batch"].where(t["tokens_per_batch"] > 0)))
        if kind != "mean_tid":  # the i.i.d. approximation is for the mean TID only
            theory = theory * np.nan
        t["floor_source"] = np.select([t["floor"].notna(), theory.notna()], ["measured", "theory"], "")
        t["floor"] = t["floor"].fillna(theory)
        t["growth"] = t["late"] / t["early"].where(t["early"] > 0)
        t["excess_ratio"] = t["observed"] / t["floor"].where(t["floor"] > 0)
        t["online_steps"] = t["online_steps"].fillna(0).astype(int)
        out.append(t[TID_SUMMARY_COLUMNS])
    out = pd.concat(out, ignore_index=True)
    # a run with no TID at all (LN, missing) has no row worth keeping
    return out[out["observed"].notna() | out["early"].notna()].reset_index(drop=True)


def spearman_with_ci(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """Spearman's ρ, its p-value and a paired percentile bootstrap CI; NaN (with a note) if undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = dict(rho=np.nan, p=np.nan, ci_low=np.nan, ci_high=np.nan, note="")
    if len(x) < 3:
        out["note"] = f"{len(x)} dataset(s): a rank correlation needs at least 3"
        return out
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        out["note"] = "a constant column: the rank correlation is undefined"
        return out
    res = sps.spearmanr(x, y)
    out["rho"], out["p"] = float(res.statistic), float(res.pvalue)

    def rho(a, b, axis=-1):  # Spearman's ρ = Pearson's r of the ranks; vectorised over resamples
        return sps.pearsonr(sps.rankdata(a, axis=axis), sps.rankdata(b, axis=axis), axis=axis).statistic

    # With few datasets many resamples repeat one point and have no ρ (NaN); scipy's interval is then
    # NaN, so the percentile interval is taken over the defined resamples, and the note says how many.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = sps.bootstrap((x, y), rho, paired=True, vectorized=True, n_resamples=N_CORR_RESAMPLES,
                             confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed))
    dist = boot.bootstrap_distribution
    defined = dist[np.isfinite(dist)]
    if len(defined):
        tail = (1 - CONFIDENCE) / 2
        out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(defined, [tail, 1 - tail]))
    if len(defined) < len(dist):
        out["note"] = f"bootstrap CI over {len(defined)} of {len(dist)} resamples (the rest had a constant column)"
    return out


def correlations(tid_sum: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Claim A4: across datasets, BN's end-of-training TID vs BN's relative deficit to LN.

    The deficit is ``(LN − BN) / |LN|`` on the primary test metric, oriented so that positive means LN
    is better (relative, so that BLEU, ppl and accuracy datasets share one ranking).  The TID is the mean
    over BN's completed seeds of ``observed`` (the paper's TID), and also of ``structure`` and ``lag``
    (the parts above the sampling floor) where the probe measured them.
    """
    gaps = comparisons[(comparisons["comparison"] == "bn-ln") & (comparisons["measure"] == "primary")].copy()
    gaps = gaps[gaps["n_pairs"] > 0]
    gaps["gap"] = -gaps["diff_mean"] / gaps["mean_b"].abs()
    bn = tid_sum[(tid_sum["norm"] == "bn") & (tid_sum["status"] == "completed")]
    rows = []
    for measure in ("observed", "structure", "lag"):
        per = bn.groupby(SETTING + ["kind"], as_index=False).agg(
            tid=(measure, "mean"), tid_source=("tid_source", "first"), scale=("scale", "first"))
        per = per.dropna(subset=["tid"]).merge(gaps[SETTING + ["gap"]], on=SETTING)
        for (config, placement, kind), g in per.groupby(["config_name", "placement", "kind"]):
            g = g.dropna(subset=["gap"]).sort_values("dataset")
            source = g["tid_source"].iloc[0] if measure == "observed" and len(g) else "decomposition"
            rows.append(dict(config_name=config, scale=g["scale"].iloc[0] if len(g) else "", placement=placement,
                             kind=kind, tid_measure=measure, tid_source=source, gap="(LN-BN)/|LN|",
                             n_datasets=len(g), datasets=";".join(g["dataset"]),
                             **spearman_with_ci(g["tid"].to_numpy(), g["gap"].to_numpy())))
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


# --- the command -----------------------------------------------------------------------------------


def compute(tidy: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    tsum = tid_summary(tidy)
    obs = observations(tidy, tsum)
    comps = all_comparisons(obs)
    return dict(summary=summarise(obs), comparisons=comps, tid_summary=tsum,
                correlations=correlations(tsum, comps))


def read_stats(stats_dir: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("summary", "comparisons", "tid_summary", "correlations"):
        path = Path(stats_dir) / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; run `normlab stats` first")
        frame = pd.read_csv(path)
        for col in ("higher_is_better", "significant"):
            if col in frame.columns:
                frame[col] = frame[col].map(lambda v: v if isinstance(v, bool) else str(v).lower() == "true")
        out[name] = frame
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tidy", required=True, type=Path, help="the tidy tables (results/tidy)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the statistics (results/stats)")


def run(args: argparse.Namespace) -> int:
    results = compute(read_tidy(args.tidy))
    for name, frame in results.items():
        write_csv(frame, Path(args.out) / f"{name}.csv")
    comps = results["comparisons"]
    print(f"{len(comps)} comparisons ({int(comps['significant'].sum()) if len(comps) else 0} significant "
          f"after Holm), {len(results['correlations'])} correlations -> {args.out}")
    return 0
