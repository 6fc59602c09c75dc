"""eval_mode_gap: claim A1 -- each batch-statistics model evaluated with its population (running)
statistics and with each test batch's own statistics, mean ± sd over seeds (stats ``summary``) with one
dot per seed, beside LN's level; only datasets where a batch-statistics model was evaluated both ways."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import METRIC_UNITS, PERCENT_METRICS, norm_label
from .inputs import Inputs
from .style import (
    PLACEMENT_STYLES,
    dataset_order,
    empty_figure,
    finish,
    log_axis,
    new_figure,
    norm_color,
    ordered,
    status_note,
    styled,
)

STATS_STYLE = {"population": dict(marker="o"), "batch_stats": dict(marker="s", mfc="white")}


@styled
def draw(inputs: Inputs) -> Figure:
    title = "Evaluation with population statistics vs with batch statistics (claim A1; mean ± 1 sd over seeds)"
    summary = inputs.summary
    summary = summary[(summary["measure"] == "primary") & (summary["n"] > 0)]
    batch_norms = set(inputs.runs.loc[inputs.runs["batch_stats"].astype(bool), "norm"]) if len(inputs.runs) else set()
    batch = summary[summary["stats"] == "batch_stats"]
    datasets = dataset_order(batch)  # no empty panels: only datasets evaluated both ways
    if not datasets:
        return empty_figure(title, inputs.runs, "no batch-statistics model evaluated both ways (stats summary)")
    ncols = min(4, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    norms = ordered(batch["norm"], sorted(batch_norms))
    placements = ordered(batch["placement"], ["post", "pre"])
    fig, axes = new_figure(nrows, ncols, panel=(max(3.2, 0.6 * len(norms) * len(placements) + 0.8), 2.8))
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    scores = inputs.scores
    scores = scores[scores["primary"].astype(bool) & (scores["split"] == "test")] if len(scores) else scores
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        sub = summary[summary["dataset"] == dataset]
        metric = str(sub["metric"].iloc[0])
        scale = 100.0 if metric in PERCENT_METRICS else 1.0
        hib = bool(sub["higher_is_better"].iloc[0])
        ax.set_title(inputs.title(dataset))
        for placement in placements:  # LN's level: the reference every gap is read against
            ln = sub[(sub["norm"] == "ln") & (sub["placement"] == placement) & (sub["stats"] == "population")]
            if len(ln):
                ax.axhline(scale * ln["mean"].iloc[0], color=norm_color("ln"), ls=PLACEMENT_STYLES.get(placement, "-"),
                           lw=0.8, alpha=0.7, zorder=0)
        cells = [(n, p) for n in norms for p in placements
                 if len(sub[(sub["norm"] == n) & (sub["placement"] == p) & (sub["stats"] == "batch_stats")])]
        for x, (norm, placement) in enumerate(cells):
            color, pair = norm_color(norm), []
            for k, stats in enumerate(("population", "batch_stats")):
                s = sub[(sub["norm"] == norm) & (sub["placement"] == placement) & (sub["stats"] == stats)]
                if s.empty:
                    continue
                pos = x + (k - 0.5) * 0.3
                mean, sd = scale * s["mean"].iloc[0], scale * s["std"].iloc[0]
                ax.errorbar(pos, mean, yerr=None if not np.isfinite(sd) else sd, color=color, capsize=2, ms=6,
                            mec=color, **STATS_STYLE[stats])
                dots = scores[(scores["dataset"] == dataset) & (scores["norm"] == norm)
                              & (scores["placement"] == placement) & (scores["stats"] == stats)]["value"]
                ax.plot(np.full(len(dots), pos), scale * dots, ".", color="0.3", ms=2.5)
                pair.append((pos, mean))
            if len(pair) == 2:
                ax.plot(*zip(*pair, strict=True), color=color, lw=0.8)
            note = status_note(inputs.counts(dataset=dataset, placement=placement, norm=norm))
            if note:
                ax.text(x, 0.02, note.strip(" []"), transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=6.5, color="#d62728")
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels([f"{norm_label(n)}\n{p}" for n, p in cells], fontsize=6.5)
        ax.set_xlim(-0.6, len(cells) - 0.4)
        if metric == "ppl":
            log_axis(ax)
        ax.set_ylabel(f"test {METRIC_UNITS.get(metric, metric)} ({'↑' if hib else '↓'} better)")
    handles = [Line2D([], [], marker="o", color="0.3", ls="none", label="population (running) statistics: eval mode"),
               Line2D([], [], marker="s", mfc="white", color="0.3", ls="none",
                      label="batch statistics at inference (train-mode norm)"),
               Line2D([], [], color=norm_color("ln"), lw=0.8, label="LN level (Post-Norm solid, Pre-Norm dashed)")]
    return finish(fig, title, inputs.runs, handles,
                  note="accuracy and F1 in %, as the tables; perplexity on a log axis; dots: seeds")
