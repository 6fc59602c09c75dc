"""tid_bn_vs_rbn: BN vs RBN online TID over training (claim A6), the declared summary over layers, mean
over seeds with a ± 1 sd band, beside the probe's end-of-training floor."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import TID_KIND_LABELS, TID_SUMMARY_LABELS, norm_label
from .inputs import Inputs
from .style import (
    DIVERGED_HANDLE,
    PLACEMENT_STYLES,
    cell_label,
    dataset_order,
    draw_diverged,
    empty_figure,
    finish,
    log_axis,
    new_figure,
    no_data,
    norm_color,
    styled,
)
from .tid_curves import end_floor


@styled
def draw(inputs: Inputs, norms: tuple[str, ...] = ("bn", "rbn")) -> Figure:
    summary = inputs.declared
    title = (f"{' vs '.join(norm_label(n) for n in norms)}: TID over training ({TID_SUMMARY_LABELS[summary]}, "
             "the claims' summary; mean over seeds, band ± 1 sd)")
    curves = inputs.tid_curves
    curves = curves[curves["norm"].isin(norms) & (curves["summary"] == summary)]
    datasets = dataset_order(curves, inputs.runs[inputs.runs["norm"].isin(norms)])
    if not datasets:
        return empty_figure(title, inputs.runs, f"no {'/'.join(norm_label(n) for n in norms)} runs with online TID")
    kinds = [k for k in TID_KIND_LABELS if k in set(curves["kind"])] or ["mean_tid"]
    fig, axes = new_figure(len(kinds), len(datasets), sharey="row")
    seen: dict[str, Line2D] = {}
    any_diverged = any_floor = False
    for j, dataset in enumerate(datasets):
        for i, kind in enumerate(kinds):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(inputs.title(dataset))
            if j == 0:
                ax.set_ylabel(TID_KIND_LABELS[kind].split("  ")[0])
            if i == len(kinds) - 1:
                ax.set_xlabel("training step")
            sub = curves[(curves["dataset"] == dataset) & (curves["kind"] == kind)]
            if sub.empty:
                no_data(ax, "no online TID")
                continue
            for (norm, placement), cell in sub.groupby(["norm", "placement"]):
                color, ls = norm_color(norm), PLACEMENT_STYLES.get(placement, "-")
                c = cell[cell["group"] == "seeds"].sort_values("step")
                ax.plot(c["step"], c["mean"], color=color, ls=ls)
                ax.fill_between(c["step"], c["mean"] - c["sd"].fillna(0), c["mean"] + c["sd"].fillna(0), color=color,
                                alpha=0.15, lw=0)
                seen.setdefault(cell_label(norm, placement), Line2D([], [], color=color, ls=ls,
                                                                    label=cell_label(norm, placement)))
                for _, run in cell[cell["group"] != "seeds"].groupby("group"):
                    run = run.sort_values("step")
                    draw_diverged(ax, run["step"].to_numpy(), run["mean"].to_numpy(), color=color)
                    any_diverged = True
                floor, _ = end_floor(inputs, dataset, placement, norm, kind)
                if np.isfinite(floor) and len(c):
                    ax.plot([c["step"].max()], [floor], marker="_", ms=12, mew=2.5, color=color, zorder=6)
                    any_floor = True
            log_axis(ax)
    handles = list(seen.values())
    if any_floor:
        handles.append(Line2D([], [], color="0.3", marker="_", ms=12, mew=2.5, ls="none",
                              label="its floor at the end of training (probe; none over time)"))
    handles += [DIVERGED_HANDLE] if any_diverged else []
    return finish(fig, title, inputs.runs, handles, note="log scale", ncol=4)
