"""The scale study's figures: per factor, BN/RBN's TID against its floor (one dot per seed, the declared
summary filled and the first BN layer hollow) and the difference to LN; and the summary over factors.
Every number comes from the scale table (``normlab scale``, joined from the statistics).  Levels of a
categorical factor (placement, sentence length) are not joined by lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import PERCENT_METRICS, TID_SUMMARY_LABELS, norm_label
from .inputs import Inputs
from .style import finish, log_axis, new_figure, no_data, norm_color, styled


def categorical(rows: pd.DataFrame) -> bool:
    """A factor whose levels are not numbers (placement, sentence length): its points are not joined."""
    return rows["level_value"].isna().any()


def _levels(ax, g: pd.DataFrame) -> None:
    g = g.drop_duplicates("level_rank").sort_values("level_rank")
    ax.set_xticks(g["level_rank"], [f"{lv}*" if base else str(lv) for lv, base in zip(g["level"], g["is_base"],
                                                                                      strict=True)])
    ax.set_xlim(g["level_rank"].min() - 0.5, g["level_rank"].max() + 0.5)


def _seed_dots(inputs: Inputs, settings: pd.DataFrame, norm: str, summary: str) -> pd.DataFrame:
    t = inputs.tid_summary
    t = t[(t["norm"] == norm) & (t["kind"] == "mean_tid") & (t["summary"] == summary) & (t["status"] == "completed")]
    return t.merge(settings, left_on=["dataset", "placement"], right_on=["setting", "placement"])


@styled
def factor_figure(inputs: Inputs, table: pd.DataFrame, factor: str, note: str = "") -> Figure:
    declared = inputs.declared
    rows = table[table["factor"] == factor]
    corpora = sorted(rows["corpus"].unique())
    joined = not categorical(rows)
    fig, axes = new_figure(len(corpora), 2, panel=(3.9, 2.5))
    for i, corpus in enumerate(corpora):
        g = rows[rows["corpus"] == corpus].sort_values("level_rank")
        ax_tid, ax_gap = axes[i, 0], axes[i, 1]
        settings = g[["setting", "placement", "level_rank"]]
        drawn = False
        for k, norm in enumerate(("bn", "rbn")):
            color, shift = norm_color(norm), (k - 0.5) * 0.14
            dots = _seed_dots(inputs, settings, norm, declared)
            first = _seed_dots(inputs, settings, norm, "first")
            # the first layer a wide ring, the declared summary a dot inside: both visible where they agree
            ax_tid.scatter(first["level_rank"] + shift, first["ratio_ref"], s=60, facecolors="white",
                           edgecolors=color, zorder=3)
            ax_tid.scatter(dots["level_rank"] + shift, dots["ratio_ref"], s=14, color=color, zorder=4)
            mean = g[f"{norm}_ratio"]
            ax_tid.errorbar(g["level_rank"] + shift, mean, yerr=g[f"{norm}_ratio_sd"].fillna(0), color=color,
                            ls="-" if joined else "none", lw=1, marker="_", ms=10, capsize=2)
            drawn |= bool(len(dots))
        ax_tid.axhline(1.0, color="0.4", ls="--", lw=1)
        if drawn:
            log_axis(ax_tid)
        else:
            no_data(ax_tid, f"{corpus}: no BN/RBN probe at these points")
        kinds = g["floor_kind"].dropna()
        ax_tid.set_ylabel(f"{corpus}\nTID / floor ({kinds.iloc[0] if len(kinds) else '?'})")
        metric = g["metric"].dropna()
        metric = metric.iloc[0] if len(metric) else "metric"
        unit = 100.0 if metric in PERCENT_METRICS else 1.0  # accuracy and F1 in points, as the tables
        for k, norm in enumerate(("bn", "rbn")):
            x = g["level_rank"] + (k - 0.5) * 0.14
            y, lo, hi = (unit * g[f"{norm}_{c}"] for c in ("gap", "gap_ci_low", "gap_ci_high"))
            err = np.vstack([(y - lo).clip(lower=0).fillna(0), (hi - y).clip(lower=0).fillna(0)])
            ax_gap.errorbar(x, y, yerr=err, color=norm_color(norm), marker="o", ms=4, capsize=2, lw=1,
                            ls="-" if joined else "none")
            untestable = g[~g["testable"].fillna(False).astype(bool)]
            ax_gap.scatter(untestable["level_rank"], unit * untestable[f"{norm}_gap"], marker="x", color="0.3", s=30,
                           zorder=4)
        ax_gap.axhline(0, color="0.3", lw=0.8)
        ax_gap.set_ylabel(f"norm − LN ({metric}{' points' if unit == 100 else ''})")
        for ax in (ax_tid, ax_gap):
            _levels(ax, g)
            ax.set_xlabel(factor + ("  (* base point)" if i == len(corpora) - 1 else ""))
    handles = [Line2D([], [], color=norm_color(n), marker="o", ls="none", label=f"{norm_label(n)}: "
                      f"{TID_SUMMARY_LABELS[declared]} (dots: seeds; bar: mean ± sd)") for n in ("bn", "rbn")]
    handles += [Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", label="first BN layer (seeds)"),
                Line2D([], [], color="0.4", ls="--", label="at the floor"),
                Line2D([], [], color="0.3", marker="x", ls="none", label="not testable (LN below its bar)")]
    extra = "right: 95 % CI only with ≥ 2 seeds"
    return finish(fig, f"Scale study, factor '{factor}': BN's and RBN's TID against the floor (left), difference "
                  "to LN on the primary test metric (right)", inputs.runs, handles, ncol=3,
                  note="; ".join(x for x in (extra, note) if x))


@styled
def summary_figure(inputs: Inputs, table: pd.DataFrame, factors: list[str] | None = None, note: str = "") -> Figure:
    """BN's TID / floor at every point, grouped by factor (declared summary filled, first BN layer hollow)."""
    declared = inputs.declared
    factors = factors or list(dict.fromkeys(table["factor"]))
    corpora = sorted(table["corpus"].unique())
    colors = dict(zip(corpora, ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"), strict=False))
    fig, axes = new_figure(1, len(factors), panel=(2.0, 3.2), sharey=True)
    for j, factor in enumerate(factors):
        ax = axes[0, j]
        rows = table[table["factor"] == factor]
        joined = not categorical(rows)
        for k, corpus in enumerate(corpora):
            g = rows[rows["corpus"] == corpus].sort_values("level_rank")
            x = g["level_rank"] + (k - (len(corpora) - 1) / 2) * 0.1
            ax.plot(x, g["bn_ratio_first"], marker="o", mfc="white", ms=7, ls="none", color=colors[corpus])
            ax.plot(x, g["bn_ratio"], marker="o", ms=3.5, lw=1, ls="-" if joined else "none", color=colors[corpus])
        ax.axhline(1.0, color="0.4", ls="--", lw=1)
        _levels(ax, rows)
        ax.set_title(factor, fontsize=9)
        if j == 0:
            ax.set_ylabel("BN TID / floor")
            if table["bn_ratio"].notna().any():
                log_axis(ax)
    handles = [Line2D([], [], marker="o", ls="-", lw=1, ms=4, color=colors[c], label=c) for c in corpora]
    handles += [Line2D([], [], marker="o", ls="none", color="0.3", label=TID_SUMMARY_LABELS[declared]),
                Line2D([], [], marker="o", mfc="white", ms=7, ls="none", color="0.3", label="first BN layer"),
                Line2D([], [], color="0.4", ls="--", label="at the floor")]
    return finish(fig, "BN's TID against its floor vs scale (* = base point; mean over seeds)", inputs.runs, handles,
                  note=note, ncol=4)
