"""tid_decomposition: per BN layer (the run's own batch-statistics modules, in forward order), the probe's
components side by side on a log axis -- never stacked: they are norms of different errors and do not add.
Mean over seeds ± 1 sd (stats ``tid_profile``)."""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import PLACEMENT_LABELS, TID_KIND_LABELS, module_label, norm_label
from .inputs import Inputs
from .style import dataset_order, empty_figure, finish, log_axis, new_figure, ordered, styled

# quantity -> (label, marker, line style, colour)
QUANTITIES = {
    "observed": ("observed (batch vs running; the paper's TID)", "D", "-", "black"),
    "batch_vs_population": ("batch vs population μ*, σ*²", "o", "-", "#d62728"),
    "floor_sentence": ("floor: random sentences, same budget", "", "--", "#1f77b4"),
    "floor_token": ("floor: i.i.d. tokens (lower bound)", "", ":", "#1f77b4"),
    "lag": ("lag: running vs population", "^", "-", "#2ca02c"),
    "lag_noise": ("running average's noise √(α/(2−α))·floor", "", "-.", "#2ca02c"),
}
OFFSET = {"observed": -0.12, "batch_vs_population": 0.12}  # side by side, not on top of each other


@styled
def draw(inputs: Inputs, norm: str = "bn") -> Figure:
    title = (f"{norm_label(norm)}: TID decomposition at the end of training, per BN layer (probe; mean over seeds "
             "± 1 sd; components are not additive)")
    prof = inputs.tid_profile
    prof = prof[(prof["norm"] == norm) & (prof["method"] == "batch_stats") & prof["quantity"].isin(list(QUANTITIES))]
    datasets = dataset_order(prof)
    if not datasets:
        return empty_figure(title, inputs.runs, f"no probed {norm_label(norm)} run (stats tid_profile is empty)")
    kinds = [k for k in TID_KIND_LABELS if k in set(prof["kind"])]
    # one panel per probed (dataset, placement, kind), wrapped: no empty panels
    panels = [(d, p, k) for d in datasets for p in ordered(prof["placement"], ["post", "pre"]) for k in kinds
              if ((prof["dataset"] == d) & (prof["placement"] == p) & (prof["kind"] == k)).any()]
    ncols = min(len(panels), 4 if len(kinds) == 1 else 2 * len(kinds))
    nrows = math.ceil(len(panels) / ncols)
    widest = prof.groupby(["dataset"])["module"].nunique().max()
    fig, axes = new_figure(nrows, ncols, panel=(max(3.6, 0.32 * widest + 1.2), 2.4))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    seen = set()
    for n, (dataset, placement, kind) in enumerate(panels):
        ax, j = axes.flat[n], n % ncols
        ax.set_title(f"{inputs.title(dataset)}\n{PLACEMENT_LABELS.get(placement)} · "
                     f"{TID_KIND_LABELS[kind].split('  ')[0]}", fontsize=8)
        sub = prof[(prof["dataset"] == dataset) & (prof["placement"] == placement) & (prof["kind"] == kind)]
        modules = sub.sort_values("order").drop_duplicates("module")["module"].tolist()
        xpos = {m: k for k, m in enumerate(modules)}
        for q, (_, marker, ls, color) in QUANTITIES.items():
            c = sub[sub["quantity"] == q]
            c = c.assign(x=c["module"].map(xpos)).sort_values("x")
            if c.empty:
                continue
            seen.add(q)
            if marker:
                ax.errorbar(c["x"] + OFFSET.get(q, 0.0), c["mean"], yerr=c["sd"].fillna(0), marker=marker,
                            ls="none", color=color, ms=4, capsize=2, lw=0.9, zorder=3)
            else:
                ax.plot(c["x"], c["mean"], ls=ls, color=color, lw=1.1, zorder=2)
        kind_note = sub.loc[sub["quantity"] == "floor_sentence", "mean"]
        if kind_note.empty:
            ax.text(0.98, 0.97, "no sentence floor (old probe)", transform=ax.transAxes, ha="right", va="top",
                    fontsize=6.5, color="0.35")
        log_axis(ax)
        ax.set_xticks(range(len(modules)))
        ax.set_xticklabels([module_label(m) for m in modules], rotation=60, ha="right", fontsize=6.5)
        if j == 0:
            ax.set_ylabel("TID (dimensionless)")
    handles = [Line2D([], [], marker=QUANTITIES[q][1] or None, ls=QUANTITIES[q][2] if not QUANTITIES[q][1] else "none",
                      color=QUANTITIES[q][3], label=QUANTITIES[q][0]) for q in QUANTITIES if q in seen]
    probe_mode = sorted(set(inputs.tid_layers["probe_mode"].dropna().astype(str))) if len(inputs.tid_layers) else []
    note = f"probe mode: {', '.join(probe_mode) or 'unknown'} (train = dropout on, as in training)"
    return finish(fig, title, inputs.runs, handles, note=note, ncol=2)
