"""``normlab scale``: the scale study (config/scale.yaml) -- one table, a figure per factor, a summary.

Reads only the tidy tables, the statistics and ``results/sweep_points.csv`` (which setting is which
factor level; written by the workflow).  For every point (dataset x factor x level):

* BN's and RBN's end-of-training mean TID (the probe's ``observed``) beside the measured i.i.d.
  sampling floor, the batch-structure excess and the running-estimate lag (``stats.tid_summary``),
  per seed and averaged over seeds; ``excess = observed / floor`` (1 = at the floor);
* the BN−LN and RBN−LN differences of the primary test metric (``stats.all_comparisons``, positive =
  better than LN) with their 95 % CI where there are at least two seeds.

    normlab scale --tidy results/tidy --stats results/stats --points results/sweep_points.csv \\
        --tables paper_tables --figures figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .figures import (
    NORM_COLORS,
    Inputs,
    _finish,
    _log_axis,
    _new_figure,
    _no_data,
    _styled,
    load_inputs,
    save_figure,
)
from .tidy import write_csv

NORMS = ("bn", "rbn")
GAP_COMPARISONS = {"bn": "bn-ln", "rbn": "rbn-ln"}
TABLE_COLUMNS = [
    "corpus", "factor", "level", "level_rank", "is_base", "placement", "setting", "metric", "ln_mean",
    "bn_gap", "bn_gap_ci_low", "bn_gap_ci_high", "bn_gap_n", "bn_gap_p_holm",
    "rbn_gap", "rbn_gap_ci_low", "rbn_gap_ci_high", "rbn_gap_n",
    "bn_tid", "bn_tid_sd", "bn_floor", "bn_structure", "bn_lag", "bn_excess", "bn_growth", "bn_seeds",
    "rbn_tid", "rbn_floor", "rbn_excess", "rbn_seeds",
]


def read_points(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"normlab scale: {path} does not exist; the workflow writes it (rule sweep_points)")
    points = pd.read_csv(path, dtype={"level": str})
    points["is_base"] = points["is_base"].astype(str).str.lower() == "true"
    return points


def per_run_tid(tid_summary: pd.DataFrame) -> pd.DataFrame:
    """BN/RBN mean-TID rows of completed runs: one per run (setting in ``dataset``)."""
    t = tid_summary[(tid_summary["kind"] == "mean_tid") & (tid_summary["status"] == "completed")
                    & tid_summary["norm"].isin(NORMS)]
    return t[["dataset", "placement", "norm", "seed", "observed", "floor", "structure", "lag", "excess_ratio",
              "growth"]]


def scale_table(points: pd.DataFrame, tid_summary: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """One row per point: the gaps to LN and BN/RBN's TID against its floor (TABLE_COLUMNS)."""
    out = points.copy()
    runs = per_run_tid(tid_summary)
    for norm in NORMS:
        g = runs[runs["norm"] == norm].groupby(["dataset", "placement"])
        agg = pd.DataFrame({
            f"{norm}_tid": g["observed"].mean(), f"{norm}_tid_sd": g["observed"].std(),
            f"{norm}_floor": g["floor"].mean(), f"{norm}_structure": g["structure"].mean(),
            f"{norm}_lag": g["lag"].mean(), f"{norm}_excess": g["excess_ratio"].mean(),
            f"{norm}_growth": g["growth"].mean(), f"{norm}_seeds": g["seed"].nunique(),
        }).reset_index().rename(columns={"dataset": "setting"})
        out = out.merge(agg, on=["setting", "placement"], how="left")
        gaps = comparisons[(comparisons["comparison"] == GAP_COMPARISONS[norm])
                           & (comparisons["measure"] == "primary")]
        gaps = gaps[["dataset", "placement", "metric", "mean_b", "diff_mean", "ci_low", "ci_high", "n_pairs",
                     "p_holm"]].rename(columns={
            "dataset": "setting", "mean_b": "ln_mean", "diff_mean": f"{norm}_gap", "ci_low": f"{norm}_gap_ci_low",
            "ci_high": f"{norm}_gap_ci_high", "n_pairs": f"{norm}_gap_n", "p_holm": f"{norm}_gap_p_holm"})
        if norm != "bn":
            gaps = gaps.drop(columns=["metric", "ln_mean", f"{norm}_gap_p_holm"])
        out = out.merge(gaps, on=["setting", "placement"], how="left")
    for col in TABLE_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    return out[TABLE_COLUMNS].sort_values(["corpus", "factor", "level_rank"]).reset_index(drop=True)


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}g}"


def _gap_text(row: pd.Series, norm: str) -> str:
    gap = row[f"{norm}_gap"]
    if not np.isfinite(gap):
        return "–"
    ci = (f" [{_fmt(row[f'{norm}_gap_ci_low'])}, {_fmt(row[f'{norm}_gap_ci_high'])}]"
          if np.isfinite(row[f"{norm}_gap_ci_low"]) else " (1 seed)")
    return f"{gap:+.3g}{ci}"


def findings(table: pd.DataFrame) -> list[str]:
    """Plain statements that follow from the table: per dataset and factor, the range of BN's TID excess
    and of the BN−LN gap over the levels, and whether any gap is significant."""
    lines = []
    for (corpus, factor), g in table.groupby(["corpus", "factor"], sort=True):
        g = g.sort_values("level_rank")
        ex = g[["level", "bn_excess"]].dropna()
        gap = g[["level", "bn_gap", "bn_gap_p_holm", "bn_gap_n"]].dropna(subset=["bn_gap"])
        if ex.empty and gap.empty:
            lines.append(f"{corpus}, {factor}: no completed runs yet.")
            continue
        parts = []
        if not ex.empty:
            hi = ex.loc[ex["bn_excess"].idxmax()]
            parts.append("BN's TID / floor " + ", ".join(f"{r.level}: {r.bn_excess:.2f}" for r in ex.itertuples())
                         + f" (largest at {hi['level']})")
        if not gap.empty:
            sig = gap[gap["bn_gap_p_holm"] < 0.05]
            seeds = int(gap["bn_gap_n"].min())
            parts.append("BN−LN " + ", ".join(f"{r.level}: {r.bn_gap:+.3g}" for r in gap.itertuples())
                         + (f"; significant (Holm p < 0.05) at {', '.join(sig['level'])}" if len(sig)
                            else f"; none significant ({seeds} seed pair(s) at the fewest)"))
        lines.append(f"{corpus}, {factor}: " + "; ".join(parts) + ".")
    return lines


def table_markdown(table: pd.DataFrame, scale: str) -> str:
    head = ("| dataset | factor | level | placement | metric (LN) | BN−LN [95% CI] | RBN−LN [95% CI] | BN TID | floor "
            "| TID / floor | structure | lag | RBN TID / floor | seeds |")
    lines = ["# Scale study: BN's TID against its floor, and the gap to LN, one factor at a time", "",
             f"Configuration scale: {scale}. Gaps are on the primary test metric (positive = better than LN; "
             "perplexity is oriented so too); the CI is a bootstrap over seeds, '(1 seed)' where only one ran. "
             "TID is the probe's end-of-training mean TID, averaged over BN modules and seeds; the floor is the "
             "measured i.i.d. sampling floor; base points are in bold. Re-derive with notebooks/scale_study.py.",
             "", head, "|" + "---|" * 14]
    for _, r in table.iterrows():
        level = f"**{r.level}**" if r.is_base else r.level
        metric = r.metric if isinstance(r.metric, str) else "–"
        lines.append(
            f"| {r.corpus} | {r.factor} | {level} | {r.placement} | {metric} ({_fmt(r.ln_mean)}) | "
            f"{_gap_text(r, 'bn')} | {_gap_text(r, 'rbn')} | {_fmt(r.bn_tid)} | {_fmt(r.bn_floor)} | "
            f"{_fmt(r.bn_excess)} | {_fmt(r.bn_structure)} | {_fmt(r.bn_lag)} | {_fmt(r.rbn_excess)} | "
            f"{_fmt(r.bn_seeds, 2)} |")
    lines += ["", "## Findings (generated from the table)", ""] + [f"- {line}" for line in findings(table)]
    return "\n".join(lines) + "\n"


def _level_axis(ax, g: pd.DataFrame) -> None:
    ax.set_xticks(g["level_rank"], [f"{lv}*" if base else str(lv) for lv, base in zip(g["level"], g["is_base"],
                                                                                      strict=True)])


@_styled
def factor_figure(inputs: Inputs, table: pd.DataFrame, runs_tid: pd.DataFrame, points: pd.DataFrame,
                  factor: str) -> Figure:
    """Left: BN/RBN end-of-training mean TID per seed (dots), their mean (line) and the floor (dashed),
    log scale; right: BN−LN and RBN−LN with 95% CIs (one seed: the difference alone)."""
    rows = table[table["factor"] == factor]
    corpora = sorted(rows["corpus"].unique())
    fig, axes = _new_figure(len(corpora), 2, panel=(3.6, 2.4))
    for i, corpus in enumerate(corpora):
        g = rows[rows["corpus"] == corpus].sort_values("level_rank")
        ax_tid, ax_gap = axes[i, 0], axes[i, 1]
        pts = points[(points["factor"] == factor) & (points["corpus"] == corpus)]
        seeds = runs_tid.merge(pts[["setting", "placement", "level_rank"]],
                               left_on=["dataset", "placement"], right_on=["setting", "placement"])
        if seeds.empty:
            _no_data(ax_tid, f"{corpus}: no BN/RBN runs at these points")
        for norm in NORMS:
            s = seeds[seeds["norm"] == norm]
            ax_tid.scatter(s["level_rank"], s["observed"], s=12, color=NORM_COLORS[norm], alpha=0.6)
            ax_tid.plot(g["level_rank"], g[f"{norm}_tid"], color=NORM_COLORS[norm], marker="o", ms=3)
        ax_tid.plot(g["level_rank"], g["bn_floor"], color="0.4", ls="--", lw=1)
        if not seeds.empty:
            _log_axis(ax_tid)
        ax_tid.set_ylabel(f"{corpus}\nend mean TID")
        for k, norm in enumerate(NORMS):
            x = g["level_rank"] + (k - 0.5) * 0.12
            y = g[f"{norm}_gap"]
            lo, hi = g[f"{norm}_gap_ci_low"], g[f"{norm}_gap_ci_high"]
            err = np.vstack([(y - lo).clip(lower=0).fillna(0), (hi - y).clip(lower=0).fillna(0)])
            ax_gap.errorbar(x, y, yerr=err, color=NORM_COLORS[norm], marker="o", ms=3, capsize=2, lw=1)
        ax_gap.axhline(0, color="0.3", lw=0.8)
        metric = g["metric"].dropna()
        ax_gap.set_ylabel(f"norm − LN ({metric.iloc[0] if len(metric) else 'metric'})")
        for ax in (ax_tid, ax_gap):
            _level_axis(ax, g)
            ax.set_xlabel(factor + ("  (* base point)" if i == len(corpora) - 1 else ""))
    handles = [Line2D([], [], color=NORM_COLORS[n], marker="o", ms=3, label=n.upper()) for n in NORMS]
    handles.append(Line2D([], [], color="0.4", ls="--", label="i.i.d. sampling floor (BN)"))
    return _finish(fig, f"Scale study, factor '{factor}': TID against its floor (left), difference to LN (right)",
                   inputs, handles)


@_styled
def summary_figure(inputs: Inputs, table: pd.DataFrame, factors: list[str] | None = None) -> Figure:
    """BN's TID excess over the floor at every point, grouped by factor (in ``factors`` order, default the
    table's); 1 = at the sampling floor."""
    factors = factors or list(dict.fromkeys(table["factor"]))
    corpora = sorted(table["corpus"].unique())
    fig, axes = _new_figure(1, len(factors), panel=(1.9, 3.0), sharey=True)
    markers = dict(zip(corpora, "osD^v", strict=False))
    for j, factor in enumerate(factors):
        ax = axes[0, j]
        rows = table[table["factor"] == factor]
        for corpus in corpora:
            g = rows[rows["corpus"] == corpus].sort_values("level_rank")
            ax.plot(g["level_rank"], g["bn_excess"], marker=markers[corpus], ms=4, lw=1, label=corpus)
        ax.axhline(1.0, color="0.4", ls="--", lw=1)
        g = rows.drop_duplicates("level_rank").sort_values("level_rank")
        _level_axis(ax, g)
        ax.set_title(factor, fontsize=9)
        if j == 0:
            ax.set_ylabel("BN end mean TID / floor")
    handles = [Line2D([], [], marker=markers[c], ls="-", lw=1, ms=4, color=f"C{k}", label=c)
               for k, c in enumerate(corpora)]
    handles.append(Line2D([], [], color="0.4", ls="--", label="at the floor"))
    return _finish(fig, "TID excess over the noise floor vs scale (* = base point)", inputs, handles)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tidy", required=True, type=Path, help="the tidy tables (normlab collect --out)")
    parser.add_argument("--stats", required=True, type=Path, help="the statistics (normlab stats --out)")
    parser.add_argument("--points", required=True, type=Path, help="results/sweep_points.csv")
    parser.add_argument("--tables", required=True, type=Path, help="folder for scale_study.md and .csv")
    parser.add_argument("--figures", required=True, type=Path, help="folder for scale_*.pdf and .png")


def run(args: argparse.Namespace) -> int:
    points = read_points(args.points)
    if points.empty:
        raise SystemExit(f"normlab scale: {args.points} lists no sweep points; the config has no `sweep`")
    inputs = load_inputs(args.tidy, args.stats)
    tid_summary = pd.read_csv(args.stats / "tid_summary.csv")
    comparisons = inputs.comparisons if inputs.comparisons is not None else pd.DataFrame(
        columns=["comparison", "measure", "dataset", "placement"])
    table = scale_table(points, tid_summary, comparisons)
    scale = "; ".join(sorted(inputs.runs["scale"].astype(str).unique())) if len(inputs.runs) else "unknown"
    args.tables.mkdir(parents=True, exist_ok=True)
    write_csv(table, args.tables / "scale_study.csv")
    from normlab.atomic import atomic_write_text

    atomic_write_text(args.tables / "scale_study.md", table_markdown(table, scale))
    runs_tid = per_run_tid(tid_summary)
    for factor in dict.fromkeys(points["factor"]):
        for path in save_figure(factor_figure(inputs, table, runs_tid, points, factor), args.figures,
                                f"scale_{factor}"):
            print(path)
    for path in save_figure(summary_figure(inputs, table, list(dict.fromkeys(points["factor"]))), args.figures,
                            "scale_summary"):
        print(path)
    print(args.tables / "scale_study.md")
    return 0
