"""tid_curves: BN's online TID over training (claims A2, A3), mean over seeds with a ± 1 sd band, for the
first BN layer, the maximum and the mean over layers; the burn-in and warm-up and the growth windows
marked; the probe's floor where it was measured (at the end of training only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..labels import PLACEMENT_LABELS, TID_KIND_LABELS, TID_SUMMARY_LABELS, norm_label
from .inputs import Inputs
from .style import (
    DIVERGED_HANDLE,
    dataset_order,
    draw_diverged,
    empty_figure,
    finish,
    log_axis,
    new_figure,
    no_data,
    ordered,
    panel_note,
    status_note,
    styled,
)

# the first layer drawn wide underneath: where it is the maximum, both stay visible
SUMMARY_STYLE = {"first": dict(color="#6baed6", ls="-", lw=3.2), "max": dict(color="#d62728", ls="-", lw=1.2),
                 "mean": dict(color="0.35", ls="--", lw=1.2)}


def windows(inputs: Inputs, dataset: str, placement: str, norm: str) -> pd.Series | None:
    """The growth windows of a setting (the medians over its runs, from tid_summary)."""
    t = inputs.tid_summary
    t = t[(t["dataset"] == dataset) & (t["placement"] == placement) & (t["norm"] == norm) & t["declared"]]
    cols = ["window_start", "early_from", "early_to", "late_from", "late_to"]
    t = t[cols].apply(pd.to_numeric, errors="coerce").dropna(how="all")
    return t.median() if len(t) else None


def end_floor(inputs: Inputs, dataset: str, placement: str, norm: str, kind: str) -> tuple[float, str]:
    """The probe's reference floor of the declared summary (mean over seeds) and which floor it is."""
    t = inputs.tid_summary
    t = t[(t["dataset"] == dataset) & (t["placement"] == placement) & (t["norm"] == norm) & (t["kind"] == kind)
          & t["declared"] & (t["status"] == "completed")]
    floor = pd.to_numeric(t["floor_ref"], errors="coerce").dropna()
    kinds = t["floor_ref_kind"].dropna()
    return (float(floor.mean()), str(kinds.iloc[0])) if len(floor) else (np.nan, "")


@styled
def draw(inputs: Inputs, norm: str = "bn") -> Figure:
    title = (f"{norm_label(norm)}: training–inference discrepancy over training (online; first BN layer, maximum "
             "and mean over layers; mean over seeds, band ± 1 sd)")
    curves = inputs.tid_curves
    curves = curves[(curves["norm"] == norm)]
    runs = inputs.runs[inputs.runs["norm"] == norm]
    datasets = dataset_order(runs, curves)
    if not datasets:
        return empty_figure(title, inputs.runs, f"no {norm_label(norm)} runs, and no online TID (stats tid_curves)")
    kinds = [k for k in TID_KIND_LABELS if k in set(curves["kind"])] or ["mean_tid"]
    placements = ordered(pd.concat([runs["placement"], curves["placement"]]), ["post", "pre"])
    rows = [(k, p) for k in kinds for p in placements]
    fig, axes = new_figure(len(rows), len(datasets), sharey="row")
    any_diverged, any_floor = False, False
    for j, dataset in enumerate(datasets):
        for i, (kind, placement) in enumerate(rows):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(inputs.title(dataset))
            if j == 0:
                ax.set_ylabel(f"{TID_KIND_LABELS[kind].split('  ')[0]}\n{PLACEMENT_LABELS.get(placement, placement)}")
            if i == len(rows) - 1:
                ax.set_xlabel("training step")
            sub = curves[(curves["dataset"] == dataset) & (curves["placement"] == placement) & (curves["kind"] == kind)]
            counts = inputs.counts(dataset=dataset, placement=placement, norm=norm)
            if sub.empty:
                no_data(ax, f"{norm_label(norm)} {placement}: no online TID" + status_note(counts))
                continue
            seeds = sub[sub["group"] == "seeds"]
            for summary, style in SUMMARY_STYLE.items():
                c = seeds[seeds["summary"] == summary].sort_values("step")
                if c.empty:
                    continue
                ax.plot(c["step"], c["mean"], **style)
                ax.fill_between(c["step"], c["mean"] - c["sd"].fillna(0), c["mean"] + c["sd"].fillna(0),
                                color=style["color"], alpha=0.15, lw=0)
            for _, run in sub[(sub["group"] != "seeds") & (sub["summary"] == inputs.declared)].groupby("group"):
                run = run.sort_values("step")
                draw_diverged(ax, run["step"].to_numpy(), run["mean"].to_numpy())
                any_diverged = True
            w = windows(inputs, dataset, placement, norm)
            if w is not None and np.isfinite(w["window_start"]):
                ax.axvline(w["window_start"], color="0.2", lw=0.8, ls=":")
                if w["window_start"] >= seeds["step"].max():
                    panel_note(ax, "run ends before burn-in and warm-up: no growth measured")
                for lo, hi in (("early_from", "early_to"), ("late_from", "late_to")):
                    if np.isfinite(w[lo]) and np.isfinite(w[hi]):
                        ax.axvspan(w[lo], w[hi], color="#ffd54f", alpha=0.25, lw=0)
            floor, floor_kind = end_floor(inputs, dataset, placement, norm, kind)
            if np.isfinite(floor):
                last = seeds["step"].max()
                ax.plot([last], [floor], marker="_", ms=14, mew=2.5, color="black", zorder=6)
                panel_note(ax, f"floor ({floor_kind}): probe at the end only", where="bottom")
                any_floor = True
            log_axis(ax)
            note = status_note(counts)
            if note:
                ax.text(0.98, 0.97, note.strip(" []"), transform=ax.transAxes, ha="right", va="top", fontsize=7,
                        color="#d62728")
    handles = [Line2D([], [], label=TID_SUMMARY_LABELS[s] + (" (the claims' summary)" if s == inputs.declared else ""),
                      **st) for s, st in SUMMARY_STYLE.items()]
    handles += [Line2D([], [], color="0.2", ls=":", lw=0.8, label="burn-in (3/momentum) and warm-up end"),
                Patch(color="#ffd54f", alpha=0.4, label="early / late growth windows")]
    if any_floor:
        handles.append(Line2D([], [], color="black", marker="_", ms=12, mew=2.5, ls="none",
                              label="floor, end of training only (probe)"))
    handles += [DIVERGED_HANDLE] if any_diverged else []
    return finish(fig, title, inputs.runs, handles, ncol=3,
                  note="TID is dimensionless; log scale; a TID on its floor only reflects finite batches")
