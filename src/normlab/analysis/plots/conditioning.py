"""conditioning: claim A9 -- C50, C80, Cmax per layer at the positions the claim compares (where the
BN-family models normalise with batch statistics; the LN model at the same positions), geometric mean
over seeds with its ± 1 sd in log10 (stats ``conditioning_summary``)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import MEASURE_LABELS, module_label
from .inputs import Inputs
from .style import (
    PLACEMENT_MARKERS,
    PLACEMENT_STYLES,
    cell_label,
    dataset_order,
    empty_figure,
    finish,
    log_axis,
    new_figure,
    no_data,
    norm_color,
    styled,
)

PER_ROW = 6


@styled
def draw(inputs: Inputs, norms: tuple[str, ...] = ("ln", "bn", "rbn")) -> Figure:
    new = inputs.settings["statistics"].get("a9_site") == "output"
    what = ("centred covariance of what the linear layers after each norm see" if new else
            "OLD measure: uncentred second moment of each norm's input")
    title = f"Layer-wise conditioning at the BN positions, LN vs BN vs RBN (claim A9; {what})"
    cond = inputs.conditioning_summary
    cond = cond[cond["norm"].isin(norms) & cond["a9_measure"] & cond["a9_position"]]
    datasets = dataset_order(cond)
    if not datasets:
        return empty_figure(title, inputs.runs, "no conditioning at the A9 positions (stats conditioning_summary)")
    per_row = min(PER_ROW, len(datasets))  # many settings (a sweep) wrap into blocks of rows
    blocks = math.ceil(len(datasets) / per_row)
    measures = list(MEASURE_LABELS)
    fig, axes = new_figure(len(measures) * blocks, per_row, panel=(3.2, 2.3))
    for k in range(len(datasets), per_row * blocks):
        for i in range(len(measures)):
            axes[(k // per_row) * len(measures) + i, k % per_row].set_visible(False)
    seen: dict[tuple[str, str], Line2D] = {}
    for n, dataset in enumerate(datasets):
        block, j = divmod(n, per_row)
        sub = cond[cond["dataset"] == dataset]
        modules = sub.sort_values("order").drop_duplicates("module")["module"].tolist()
        xpos = {m: k for k, m in enumerate(modules)}
        for i, measure in enumerate(measures):
            ax = axes[block * len(measures) + i, j]
            if i == 0:
                ax.set_title(inputs.title(dataset), fontsize=8)
            if j == 0:
                ax.set_ylabel(MEASURE_LABELS[measure])
            part = sub[sub["measure"] == measure]
            if part.empty:
                no_data(ax, "no conditioning rows")
                continue
            cells = list(part.groupby(["norm", "placement"]))
            for k, ((norm, placement), cell) in enumerate(cells):
                cell = cell.assign(x=cell["module"].map(xpos)).sort_values("x")
                x = cell["x"] + (k - (len(cells) - 1) / 2) * 0.08
                mid = 10 ** cell["mean_log10"]
                sd = cell["sd_log10"].fillna(0)
                err = np.vstack([mid - 10 ** (cell["mean_log10"] - sd), 10 ** (cell["mean_log10"] + sd) - mid])
                color, ls = norm_color(norm), PLACEMENT_STYLES.get(placement, "-")
                marker = PLACEMENT_MARKERS.get(placement, "o")
                ax.errorbar(x, mid, yerr=err, color=color, ls=ls, marker=marker, ms=3.5, capsize=2, lw=1.1)
                seen.setdefault((norm, placement), Line2D([], [], color=color, ls=ls, marker=marker,
                                                          label=cell_label(norm, placement)))
            log_axis(ax)
            ax.set_xticks(range(len(modules)))
            ax.set_xticklabels([module_label(m) for m in modules], rotation=45, ha="right", fontsize=7)
    handles = [seen[(n, p)] for n in norms for p in ("post", "pre") if (n, p) in seen]
    return finish(fig, title, inputs.runs, handles, ncol=6,
                  note="geometric mean over seeds, bars ± 1 sd of log10; dimensionless ratios (Cmax: squared feature "
                       "units); log scale; x: BN position in forward order")
