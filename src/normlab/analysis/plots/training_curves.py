"""training_curves: training (solid) and validation (dashed) loss over training, mean over seeds with a
± 1 sd band (stats ``curves_summary``), one colour per norm, per dataset and placement."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import NORM_ORDER, PLACEMENT_LABELS, norm_label
from .inputs import Inputs
from .style import (
    DIVERGED_HANDLE,
    dataset_order,
    draw_diverged,
    empty_figure,
    finish,
    new_figure,
    no_data,
    norm_color,
    ordered,
    status_note,
    styled,
)

LOSS_UNITS = {"image": "nats per image", "classification": "nats per sentence", "translation": "nats per target token",
              "lm": "nats per token", "lm_stream": "nats per token", "tagging": "nats per token"}


@styled
def draw(inputs: Inputs) -> Figure:
    title = "Training (solid) and validation (dashed) loss over training (mean over seeds, band ± 1 sd)"
    curves = inputs.curves_summary
    task_loss = (curves["metric"] == "task_loss").any()
    train_metric = "task_loss" if task_loss else "loss"
    curves = curves[((curves["kind"] == "train") & (curves["metric"] == train_metric))
                    | ((curves["kind"] == "valid") & (curves["metric"] == "loss"))]
    datasets = dataset_order(curves, inputs.runs)
    if not datasets:
        return empty_figure(title, inputs.runs, "no loss curves (stats curves_summary)")
    placements = ordered(pd.concat([curves["placement"], inputs.runs["placement"]]), ["post", "pre"])
    fig, axes = new_figure(len(placements), len(datasets))
    seen: dict[str, Line2D] = {}
    any_diverged = False
    for j, dataset in enumerate(datasets):
        task = inputs.task_of(dataset)
        for i, placement in enumerate(placements):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(inputs.title(dataset))
            ax.set_ylabel(f"{PLACEMENT_LABELS.get(placement, placement)}\nloss ({LOSS_UNITS.get(task, 'nats')})",
                          fontsize=8)
            if i == len(placements) - 1:
                ax.set_xlabel("training step")
            sub = curves[(curves["dataset"] == dataset) & (curves["placement"] == placement)]
            if sub.empty:
                no_data(ax, placement + status_note(inputs.counts(dataset=dataset, placement=placement)))
                continue
            for norm in ordered(sub["norm"], NORM_ORDER):
                color = norm_color(norm)
                for kind, ls in (("train", "-"), ("valid", "--")):
                    part = sub[(sub["norm"] == norm) & (sub["kind"] == kind)]
                    c = part[part["group"] == "seeds"].sort_values("step")
                    ax.plot(c["step"], c["mean"], color=color, ls=ls, marker="." if len(c) < 3 else None)
                    ax.fill_between(c["step"], c["mean"] - c["sd"].fillna(0), c["mean"] + c["sd"].fillna(0),
                                    color=color, alpha=0.12, lw=0)
                    if kind == "train":
                        for _, run in part[part["group"] != "seeds"].groupby("group"):
                            run = run.sort_values("step")
                            draw_diverged(ax, run["step"].to_numpy(), run["mean"].to_numpy(), color=color)
                            any_diverged = True
                seen.setdefault(norm, Line2D([], [], color=color, label=norm_label(norm)))
    handles = [seen[n] for n in ordered(seen, NORM_ORDER)]
    handles += [Line2D([], [], color="0.3", ls="-", label="train"), Line2D([], [], color="0.3", ls="--", label="valid")]
    handles += [DIVERGED_HANDLE] if any_diverged else []
    note = ("train: task loss without penalties" if task_loss else
            "train: the engine's logged loss, which includes RBN's penalty (no task-only loss in the tidy tables); "
            "label-smoothed, mean over the logging window; valid: without penalty or smoothing")
    return finish(fig, title, inputs.runs, handles, ncol=8, note=note)
