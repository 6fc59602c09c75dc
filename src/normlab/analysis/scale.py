"""``normlab scale``: the scale study (config/scale.yaml) -- one table, a figure per factor, a summary.

Reads only the statistics (``normlab stats``), the tidy runs (statuses, for the titles) and
``results/sweep_points.csv`` (which setting is which factor level; written by the workflow).  For every
point (dataset × factor × level), joined from the statistics tables, nothing recomputed:

* BN's and RBN's end-of-training TID against its floor: batch_vs_population / floor (the sentence floor
  where the probe measured it, else the i.i.d. token floor, said so), for the declared summary over
  layers (the claims') and for the first BN layer; the excess over the floor in quadrature; lag against
  the running average's own noise; the online growth between the declared windows;
* BN − LN and RBN − LN on the primary test metric (+ = better than LN; CI and tests only with ≥ 2 seeds)
  and whether the point is testable (LN's learning bar).

    normlab scale --tidy results/tidy --stats results/stats --points results/sweep_points.csv \\
        --tables paper_tables --figures figures [--note "RBN λ ..."]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from normlab.atomic import atomic_write_text

from .contract import SCALE_TABLE
from .labels import TID_SUMMARY_LABELS
from .tidy import write_csv

NORMS = ("bn", "rbn")
GAP_COMPARISONS = {"bn": "bn-ln", "rbn": "rbn-ln"}
POINT_COLUMNS = ["corpus", "factor", "level", "level_rank", "level_value", "is_base", "placement", "setting"]
GAP_FIELDS = {"diff_mean": "gap", "ci_low": "gap_ci_low", "ci_high": "gap_ci_high", "rel_effect": "gap_rel",
              "n_pairs": "gap_n", "p_holm_worse": "gap_p_holm_worse", "mde_rel": "gap_mde_rel"}
TID_FIELDS = {"ratio_ref": "ratio", "observed": "tid", "floor_ref": "floor", "excess_sentence": "excess_sentence",
              "excess_token": "excess_token", "lag_ratio": "lag_ratio", "growth": "growth"}
TABLE_COLUMNS = (POINT_COLUMNS + ["metric", "ln_mean", "testable", "not_testable_reason", "floor_kind", "probe_mode"]
                 + [f"{n}_{c}" for n in NORMS for c in GAP_FIELDS.values()]
                 + [f"{n}_{c}" for n in NORMS for c in TID_FIELDS.values()]
                 + [f"{n}_ratio_first" for n in NORMS] + [f"{n}_ratio_sd" for n in NORMS] + ["bn_seeds", "rbn_seeds"])


def read_points(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"normlab scale: {path} does not exist; the workflow writes it (rule sweep_points)")
    points = pd.read_csv(path, dtype={"level": str})
    points["is_base"] = points["is_base"].astype(str).str.lower() == "true"
    return points


def per_run_tid(tid_summary: pd.DataFrame, summary: str) -> pd.DataFrame:
    """BN/RBN mean-TID rows of completed runs for one summary over layers: one per run."""
    t = tid_summary[(tid_summary["kind"] == "mean_tid") & (tid_summary["status"] == "completed")
                    & tid_summary["norm"].isin(NORMS) & (tid_summary["summary"] == summary)]
    return t[["dataset", "placement", "norm", "seed", "floor_ref_kind", "probe_mode", *TID_FIELDS]]


def scale_table(points: pd.DataFrame, stats: dict[str, pd.DataFrame], declared: str) -> pd.DataFrame:
    """One row per point (TABLE_COLUMNS), every number from the statistics tables."""
    out = points.copy()
    key = ["setting", "placement"]
    bars = stats["learning_bars"].rename(columns={"dataset": "setting", "reason": "not_testable_reason",
                                                  "ln_mean": "ln_mean"})
    out = out.merge(bars[key + ["metric", "ln_mean", "testable", "not_testable_reason"]], on=key, how="left")
    out.loc[out["testable"].fillna(False).astype(bool), "not_testable_reason"] = ""
    comps = stats["comparisons"]
    tsum = stats["tid_summary"]
    for norm in NORMS:
        gaps = comps[(comps["comparison"] == GAP_COMPARISONS[norm]) & (comps["measure"] == "primary")]
        gaps = gaps[["dataset", "placement", *GAP_FIELDS]].rename(
            columns={"dataset": "setting", **{k: f"{norm}_{v}" for k, v in GAP_FIELDS.items()}})
        out = out.merge(gaps, on=key, how="left")
        for summary, suffix in ((declared, ""), ("first", "_first")):
            t = per_run_tid(tsum, summary)
            t = t[t["norm"] == norm]
            g = t.groupby(["dataset", "placement"])
            if suffix:
                agg = pd.DataFrame({f"{norm}_ratio_first": g["ratio_ref"].mean()})
            else:
                agg = pd.DataFrame({f"{norm}_{v}": g[k].mean() for k, v in TID_FIELDS.items()})
                agg[f"{norm}_ratio_sd"] = g["ratio_ref"].std()
                agg[f"{norm}_seeds"] = g["seed"].nunique()
                if norm == "bn":
                    agg["floor_kind"] = g["floor_ref_kind"].first()
                    agg["probe_mode"] = g["probe_mode"].first()
            out = out.merge(agg.reset_index().rename(columns={"dataset": "setting"}), on=key, how="left")
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
    n = row[f"{norm}_gap_n"]
    ci = (f" [{_fmt(row[f'{norm}_gap_ci_low'])}, {_fmt(row[f'{norm}_gap_ci_high'])}]"
          if np.isfinite(row[f"{norm}_gap_ci_low"]) else f" ({int(n)} seed{'s' if n != 1 else ''}: no CI)")
    return f"{gap:+.3g}{ci}"


def findings(table: pd.DataFrame) -> list[str]:
    """Plain statements that follow from the table: per dataset and factor, BN's TID against its floor
    (the declared summary and the first BN layer) and the BN−LN gap over the levels."""
    lines = []
    for (corpus, factor), g in table.groupby(["corpus", "factor"], sort=True):
        g = g.sort_values("level_rank")
        ex = g[["level", "bn_ratio", "bn_ratio_first"]].dropna(subset=["bn_ratio"])
        gap = g[["level", "bn_gap", "bn_gap_p_holm_worse", "bn_gap_n"]].dropna(subset=["bn_gap"])
        if ex.empty and gap.empty:
            lines.append(f"{corpus}, {factor}: no completed runs yet.")
            continue
        parts = []
        if not ex.empty:
            hi = ex.loc[ex["bn_ratio"].idxmax()]
            parts.append("BN's TID / floor " + ", ".join(f"{r.level}: {r.bn_ratio:.2f} (first layer "
                                                         f"{r.bn_ratio_first:.2f})" for r in ex.itertuples())
                         + f" (largest at {hi['level']})")
        if not gap.empty:
            sig = gap[gap["bn_gap_p_holm_worse"] < 0.05]
            seeds = int(gap["bn_gap_n"].min())
            parts.append("BN−LN " + ", ".join(f"{r.level}: {r.bn_gap:+.3g}" for r in gap.itertuples())
                         + (f"; BN significantly worse (Holm p < 0.05) at {', '.join(sig['level'])}" if len(sig)
                            else f"; no test shows BN worse ({seeds} seed pair(s) at the fewest)"))
        nt = g[~g["testable"].fillna(False).astype(bool)]
        if len(nt):
            parts.append("not testable: " + ", ".join(nt["level"]))
        lines.append(f"{corpus}, {factor}: " + "; ".join(parts) + ".")
    return lines


def table_markdown(table: pd.DataFrame, scale: str, declared: str, limitations: list[str]) -> str:
    head = ("| dataset | factor | level | placement | metric (LN) | testable | BN−LN [95% CI] | RBN−LN [95% CI] | "
            "BN TID | floor | TID / floor | first layer / floor | excess | lag / its noise | RBN TID / floor | seeds |")
    floor_kinds = ", ".join(sorted(set(table["floor_kind"].dropna().astype(str)))) or "–"
    lines = ["# Scale study: BN's TID against its floor, and the gap to LN, one factor at a time", "",
             f"Configuration scale: {scale}. Gaps are on the primary test metric in its units (positive = better "
             "than LN); the CI is a t-interval over seed pairs (none with one seed). TID: the probe's end-of-training "
             f"TID, {TID_SUMMARY_LABELS[declared]} (the claims' declared summary), mean over seeds; TID / floor = "
             f"batch_vs_population over the {floor_kinds} floor, per layer then summarised; 'first layer' = the "
             "first BN layer's ratio; excess = √(max(b² − f², 0)), the part above the floor in quadrature; lag / its "
             "noise = running-vs-population lag over the running average's own noise √(α/(2−α))·floor. 'testable': "
             "LN beats its trivial baseline by the declared margin. Base points in bold. Re-derive with "
             "notebooks/scale_study.py."]
    if limitations:
        lines += ["", "What these tables cannot show (needs a re-run with the new probe):"]
        lines += [f"- {note}" for note in limitations]
    lines += ["", head, "|" + "---|" * 16]
    for _, r in table.iterrows():
        level = f"**{r.level}**" if r.is_base else r.level
        metric = r.metric if isinstance(r.metric, str) else "–"
        excess = r.bn_excess_sentence if np.isfinite(r.bn_excess_sentence) else r.bn_excess_token
        testable = "yes" if bool(r.testable) else "**no**"
        lines.append(
            f"| {r.corpus} | {r.factor} | {level} | {r.placement} | {metric} ({_fmt(r.ln_mean)}) | {testable} | "
            f"{_gap_text(r, 'bn')} | {_gap_text(r, 'rbn')} | {_fmt(r.bn_tid)} | {_fmt(r.bn_floor)} | "
            f"{_fmt(r.bn_ratio)} | {_fmt(r.bn_ratio_first)} | {_fmt(excess)} | {_fmt(r.bn_lag_ratio)} | "
            f"{_fmt(r.rbn_ratio)} | {_fmt(r.bn_seeds, 2)} |")
    nt = table[~table["testable"].fillna(False).astype(bool)]
    if len(nt):
        lines += ["", "Not testable (LN below its learning bar): " + "; ".join(
            f"{r.setting}/{r.placement}: {r.not_testable_reason}" for r in nt.itertuples())]
    lines += ["", "## Findings (generated from the table)", ""] + [f"- {line}" for line in findings(table)]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tidy", required=True, type=Path, help="the tidy tables (runs.csv: statuses)")
    parser.add_argument("--stats", required=True, type=Path, help="the statistics (normlab stats --out)")
    parser.add_argument("--points", required=True, type=Path, help="results/sweep_points.csv")
    parser.add_argument("--tables", required=True, type=Path, help="folder for scale_study.md and .csv")
    parser.add_argument("--figures", required=True, type=Path, help="folder for scale_*.pdf and .png")
    parser.add_argument("--note", default="", help="a line every figure states (the workflow: RBN's λ)")
    from .figures import add_stamp_argument

    add_stamp_argument(parser)


def run(args: argparse.Namespace) -> int:
    from .figures import figure_stamp, save_figure
    from .plots import scale as plots
    from .plots.inputs import load_inputs

    points = read_points(args.points)
    if points.empty:
        raise SystemExit(f"normlab scale: {args.points} lists no sweep points; the config has no `sweep`")
    inputs = load_inputs(args.tidy, args.stats)
    table = scale_table(points, inputs.stats, inputs.declared)
    scale = "; ".join(sorted(inputs.runs["scale"].astype(str).unique())) if len(inputs.runs) else "unknown"
    args.tables.mkdir(parents=True, exist_ok=True)
    write_csv(table, args.tables / f"{SCALE_TABLE}.csv")
    atomic_write_text(args.tables / f"{SCALE_TABLE}.md",
                      table_markdown(table, scale, inputs.declared, inputs.settings.get("limitations", [])))
    factors = list(dict.fromkeys(points["factor"]))
    stamp = figure_stamp(args.config_sha256)
    for factor in factors:
        for path in save_figure(plots.factor_figure(inputs, table, factor, note=args.note), args.figures,
                                f"scale_{factor}", stamp=stamp):
            print(path)
    for path in save_figure(plots.summary_figure(inputs, table, factors, note=args.note), args.figures,
                            "scale_summary", stamp=stamp):
        print(path)
    print(args.tables / f"{SCALE_TABLE}.md")
    return 0
