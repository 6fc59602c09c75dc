"""The papers' figures, drawn from the tidy tables only (docs/analysis_contract.md §4, §6).

    normlab figures --tidy results/tidy --stats results/stats --out figures

writes ``NAME.pdf`` and ``NAME.png`` for every name in :data:`FIGURES`, atomically, always: a figure
whose data is absent gets a panel that says "no runs of this kind in this configuration".  Each
figure is one function ``NAME(inputs) -> Figure`` (the notebooks call the same functions), with a
shared small style.  Diverged runs are drawn apart and marked ×; missing runs are counted in the
titles.  Every TID is drawn beside its sampling floor: at small scale a TID at the floor ≈ 1/√tokens
says only that batches are finite (``tid_probe.md``).

What is derived here from the tidy tables (the contract has no column for it):

* the theoretical floor of the *variance* TID, 1/√(2·tokens per batch) (Gaussian features; the
  contract's ``floor_theory`` is for mean TID only), drawn only when the probe's measured floor is absent;
* the "late" TID of a run (``tid_vs_gap``): its online mean TID over the last quarter of its logged
  steps, averaged over its norm modules;
* the BN−LN gap (``tid_vs_gap``): per seed, (BN − LN) on the primary test metric with population
  statistics, signed so that + means BN is better, in % of LN's mean, so that datasets with
  different metrics share an axis.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

FIGURES = ("tid_curves", "tid_decomposition", "tid_bn_vs_rbn", "tid_vs_gap", "eval_mode_gap",
           "training_curves", "conditioning")

ID_COLUMNS = ["run_id", "config_name", "scale", "task", "dataset", "placement", "norm", "seed"]
# The tidy tables this module reads and the columns it needs from each (contract §4).
TIDY_TABLES = {
    "runs": ["status", "steps", "diverged_at_step", "tokens_per_batch", "primary_metric", "higher_is_better"],
    "scores": ["split", "stats", "metric", "value", "primary", "higher_is_better"],
    "curves": ["step", "kind", "metric", "value"],
    "tid": ["method", "step", "module", "layer", "position", "kind", "value"],
    "tid_decomposition": ["module", "kind", "component", "value", "tokens_per_batch", "method"],
    "conditioning": ["module", "measure", "value"],
}
STATS_FILES = ("comparisons", "correlations")

NO_RUNS = "no runs of this kind in this configuration"

# --------------------------------------------------------------------------------------------------
# The shared style: one colour per norm everywhere, one line style per placement.

NORM_LABELS = {"ln": "LN", "ln_simple": "LN-simple", "detachnorm": "DetachNorm", "adanorm": "AdaNorm",
               "rmsnorm": "RMSNorm", "bn": "BN", "rbn": "RBN", "powernorm": "PowerNorm", "pn_vanilla": "PN-V",
               "none": "w/o Norm"}
_PALETTE = sns.color_palette("colorblind", 10)
NORM_COLORS = dict(zip(["ln", "bn", "rbn", "ln_simple", "adanorm", "detachnorm", "powernorm", "pn_vanilla",
                        "rmsnorm", "none"], _PALETTE, strict=True))
PLACEMENT_LABELS = {"post": "Post-Norm", "pre": "Pre-Norm"}
PLACEMENT_STYLES = {"post": "-", "pre": "--"}
PLACEMENT_MARKERS = {"post": "o", "pre": "s"}
TASK_ORDER = ["image", "lm", "translation", "tagging", "classification"]
BATCH_STAT_NORMS = ["bn", "rbn", "powernorm", "pn_vanilla"]
LN_FAMILY = ["ln", "ln_simple", "adanorm", "detachnorm", "rmsnorm", "none"]
TID_KINDS = {"mean_tid": "mean TID  ‖μ_B − μ̂‖ / ‖σ̂‖", "var_tid": "variance TID  ‖σ_B − σ̂‖ / ‖σ̂‖"}
COMPONENTS = {"floor": "floor (i.i.d. sampling)", "structure": "batch structure", "lag": "running-stat lag"}
MEASURES = {"c50": "C50%  λ₁/λ₅₀%", "c80": "C80%  λ₁/λ₈₀%", "cmax": "Cmax  λ_max"}
DIVERGED_COLOR = "#d62728"
STYLE = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "figure.titlesize": 11, "lines.linewidth": 1.4, "axes.titleweight": "normal",
    "figure.dpi": 100,
}


def norm_label(norm: str) -> str:
    return NORM_LABELS.get(norm, norm)


def cell_label(norm: str, placement: str) -> str:
    return f"{norm_label(norm)} {PLACEMENT_LABELS.get(placement, placement)}"


def _styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw inside the shared style without touching the caller's global rcParams."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Inputs:
    """The tidy tables (empty frames with the contract's columns where a file is absent) and the stats."""

    runs: pd.DataFrame
    scores: pd.DataFrame
    curves: pd.DataFrame
    tid: pd.DataFrame
    tid_decomposition: pd.DataFrame
    conditioning: pd.DataFrame
    comparisons: pd.DataFrame | None = None
    correlations: pd.DataFrame | None = None
    absent: list[str] = field(default_factory=list)


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame | None:
    """A CSV as a frame; None when the file is absent; an empty frame when it has no rows."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)} (docs/analysis_contract.md §4); "
                         "rebuild it with `normlab collect`")
    return frame


def _as_bool(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.astype(str).str.strip().str.lower().isin(["true", "1", "yes"])


def load_inputs(tidy_dir: str | Path, stats_dir: str | Path | None = None) -> Inputs:
    """Read the tidy tables of ``tidy_dir`` and the statistics of ``stats_dir`` (both may be incomplete)."""
    tidy_dir = Path(tidy_dir)
    frames, absent = {}, []
    for name, extra in TIDY_TABLES.items():
        columns = ID_COLUMNS + extra
        frame = _read_table(tidy_dir / f"{name}.csv", columns)
        if frame is None:
            absent.append(f"{name}.csv")
            frame = pd.DataFrame(columns=columns)
        frames[name] = frame
    for name in ("runs", "scores"):
        for col in ("higher_is_better", "primary"):
            if col in frames[name].columns:
                frames[name][col] = _as_bool(frames[name][col])
    stats = {}
    for name in STATS_FILES:
        path = Path(stats_dir) / f"{name}.csv" if stats_dir is not None else None
        stats[name] = _read_table(path, []) if path is not None else None
    return Inputs(**frames, **stats, absent=absent)


# --------------------------------------------------------------------------------------------------
# Small helpers shared by the figures


def _dataset_order(*frames: pd.DataFrame) -> list[str]:
    """Datasets, image (CV) first, then LM, then the other NLP tasks (the papers' CV-vs-NLP contrast)."""
    pairs = pd.concat([f[["task", "dataset"]] for f in frames if len(f)], ignore_index=True).drop_duplicates() \
        if any(len(f) for f in frames) else pd.DataFrame(columns=["task", "dataset"])
    rank = {t: i for i, t in enumerate(TASK_ORDER)}
    pairs = pairs.assign(r=pairs["task"].map(lambda t: rank.get(t, len(rank))))
    return pairs.sort_values(["r", "dataset"])["dataset"].drop_duplicates().tolist()


def _task_of(inputs: Inputs, dataset: str, *frames: pd.DataFrame) -> str:
    for f in (inputs.runs, *frames):
        hit = f.loc[f["dataset"] == dataset, "task"]
        if len(hit):
            return str(hit.iloc[0])
    return "?"


def _column_title(inputs: Inputs, dataset: str, *frames: pd.DataFrame) -> str:
    task = _task_of(inputs, dataset, *frames)
    return f"{'CV' if task == 'image' else 'NLP'} · {dataset} ({task})"


def _ordered(values, order: list[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def _module_key(module: str) -> tuple:
    """Forward order of a norm module: encoder before decoder, then layer, then position."""
    parts = str(module).split(".")
    stack = 0 if "encoder" in parts else 1 if "decoder" in parts else 2
    digits = [int(p) for p in parts if p.isdigit()]
    layer = digits[0] if digits else 10**6  # the final norm comes after every layer
    position = {"attn_norm": 0, "cross_norm": 1, "ffn_norm": 2}.get(parts[-1], 3)
    return stack, layer, position, str(module)


def module_label(module: str) -> str:
    """'encoder.layers.1.ffn_norm' -> 'E1 ffn'; 'decoder.final_norm' -> 'D final'."""
    parts = str(module).split(".")
    stack = "E" if "encoder" in parts else "D" if "decoder" in parts else ""
    digits = [p for p in parts if p.isdigit()]
    position = re.sub(r"_norm$", "", parts[-1])
    return f"{stack}{digits[0] if digits else ''} {position}".strip()


def _run_counts(inputs: Inputs, **cell) -> dict[str, int]:
    """How many runs of a cell (any subset of dataset/placement/norm) have each status."""
    runs = inputs.runs
    mask = pd.Series(True, index=runs.index)
    for key, value in cell.items():
        mask &= runs[key] == value
    return runs.loc[mask, "status"].value_counts().to_dict()


def _status_note(counts: dict[str, int]) -> str:
    bad = [f"{counts[s]} {s}" for s in ("diverged", "missing") if counts.get(s)]
    return f" [{', '.join(bad)}]" if bad else ""


def _completed(inputs: Inputs, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` from completed runs (all rows when runs.csv does not say)."""
    if not len(inputs.runs):
        return frame
    ok = inputs.runs.loc[inputs.runs["status"] == "completed", "run_id"]
    return frame[frame["run_id"].isin(ok)]


def _diverged_ids(inputs: Inputs) -> set[str]:
    return set(inputs.runs.loc[inputs.runs["status"] == "diverged", "run_id"])


def _subtitle(inputs: Inputs, extra: str = "") -> str:
    runs = inputs.runs
    if not len(runs):
        return "configuration unknown (runs.csv absent or empty)" + (f" · {extra}" if extra else "")
    configs = ", ".join(sorted(runs["config_name"].astype(str).unique()))
    # the configuration's own `scale` text says what the models are and how far from the papers
    scale = "; ".join(sorted(runs["scale"].astype(str).unique()))
    seeds = runs.groupby(["dataset", "placement", "norm"])["seed"].nunique()
    counts = runs["status"].value_counts()
    status = ", ".join(f"{counts[s]} {s}" for s in ("diverged", "missing") if counts.get(s))
    parts = [f"config {configs} ({scale})", f"seeds per cell: {seeds.min()}–{seeds.max()}"
             if seeds.min() != seeds.max() else f"{seeds.min()} seeds per cell"]
    if status:
        parts.append(f"{status} run(s)")
    if extra:
        parts.append(extra)
    return " · ".join(parts)


def _new_figure(nrows: int, ncols: int, panel: tuple[float, float] = (3.0, 2.3), **kw):
    # A bare Figure, not pyplot: no backend, no global figure list, the same in a notebook and the CLI;
    # savefig renders PNG with Agg.
    fig = Figure(figsize=(max(panel[0] * ncols, 6.5), panel[1] * nrows + 1.3), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def _no_data(ax, detail: str = "") -> None:
    text = textwrap.fill(NO_RUNS, 34) + (f"\n({textwrap.fill(detail, 40)})" if detail else "")
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.35")
    # tick labels off, not ticks removed: the panel may share its axes with panels that have data
    ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False, which="both")
    ax.grid(False)


def _log_axis(ax, which: str = "y") -> None:
    """Log scale with plain numbers (0.02, not 2×10⁻²); minor ticks labelled only on a short range."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")

    def minor(v: float, _pos) -> str:
        lo, hi = sorted(axis.get_view_interval())
        decades = math.log10(hi / lo) if lo > 0 else math.inf
        mantissa = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        shown = {2, 3, 5} if decades < 1.3 else {3} if decades < 2.2 else set()
        return f"{v:.3g}" if mantissa in shown else ""

    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    axis.set_minor_formatter(ticker.FuncFormatter(minor))


def _empty_figure(title: str, inputs: Inputs, detail: str) -> Figure:
    fig, axes = _new_figure(1, 1, panel=(6.5, 2.5))
    _no_data(axes[0, 0], detail)
    return _finish(fig, title, inputs)


def _finish(fig: Figure, title: str, inputs: Inputs, handles=None, note: str = "", ncol: int = 6) -> Figure:
    width = int(fig.get_figwidth() * 11.5)  # characters per line at the suptitle's size (~6 pt each)
    fig.suptitle(f"{textwrap.fill(title, width)}\n{textwrap.fill(_subtitle(inputs, note), width)}")
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(ncol, len(handles)), frameon=False)
    return fig


def _mean_sd(frame: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Mean, sample sd and n over seeds (NaN sd for one seed)."""
    return frame.groupby(by, dropna=False)[value].agg(mean="mean", sd="std", n="count").reset_index()


def _tokens_per_batch(inputs: Inputs, dataset: str, placement: str | None = None,
                      norm: str | None = None) -> float:
    runs = inputs.runs[inputs.runs["dataset"] == dataset]
    if placement is not None:
        runs = runs[runs["placement"] == placement]
    if norm is not None and (runs["norm"] == norm).any():
        runs = runs[runs["norm"] == norm]
    tokens = pd.to_numeric(runs["tokens_per_batch"], errors="coerce").dropna()
    return float(tokens.median()) if len(tokens) else math.nan


def noise_floors(inputs: Inputs, dataset: str, placement: str, norm: str, kind: str) -> list[tuple[float, str, str]]:
    """The sampling floor(s) to draw beside a TID: (value, label, line style).

    The probe's measured floor (i.i.d. batches at the final weights) when present; the theory
    1/√tokens (mean TID) or 1/√(2·tokens) (variance TID, Gaussian features) otherwise.
    """
    dec = inputs.tid_decomposition
    dec = dec[(dec["dataset"] == dataset) & (dec["placement"] == placement) & (dec["kind"] == kind)]
    same_norm = dec[dec["norm"] == norm]
    dec = same_norm if len(same_norm) else dec[dec["method"] == "batch_stats"] if len(dec) else dec
    out = []
    measured = dec.loc[dec["component"] == "floor", "value"]
    if len(measured):
        out.append((float(measured.mean()), "sampling floor, measured (probe: i.i.d. batches)", "-"))
    theory = dec.loc[dec["component"] == "floor_theory", "value"]
    if len(theory):
        out.append((float(theory.mean()), "sampling floor, theory 1/√tokens per batch (probe)", ":"))
    elif not len(measured):
        tokens = _tokens_per_batch(inputs, dataset, placement, norm)
        if tokens > 0 and kind == "mean_tid":
            out.append((1 / math.sqrt(tokens), "sampling floor ≈ 1/√tokens per batch (runs.csv)", ":"))
        elif tokens > 0 and kind == "var_tid":
            out.append((1 / math.sqrt(2 * tokens), "sampling floor ≈ 1/√(2·tokens per batch) (Gaussian)",
                        ":"))
    return out


def _draw_floors(ax, floors, seen: dict[str, Line2D]) -> None:
    for value, label, style in floors:
        color = "0.45" if style == "-" else "black"  # measured: grey solid; theory: black dotted
        ax.axhline(value, color=color, ls=style, lw=1.2, zorder=1)
        seen.setdefault(label, Line2D([], [], color=color, ls=style, lw=1.2, label=label))


_DIVERGED_HANDLE = Line2D([], [], color=DIVERGED_COLOR, marker="x", ls=":", lw=1,
                          label="diverged run (× = last logged step)")


def _draw_diverged(ax, frame: pd.DataFrame, x: str = "step", value: str = "value", color=DIVERGED_COLOR) -> bool:
    """Each diverged run of ``frame`` (already one run per ``run_id``) as a thin dotted line ending in ×."""
    drawn = False
    for _, run in frame.groupby("run_id"):
        run = run.dropna(subset=[value]).sort_values(x)
        if not len(run):
            continue
        ax.plot(run[x], run[value], color=color, ls=":", lw=0.9, zorder=2)
        ax.plot(run[x].iloc[-1], run[value].iloc[-1], marker="x", color=DIVERGED_COLOR, ms=7, mew=2, zorder=5)
        drawn = True
    return drawn


# --------------------------------------------------------------------------------------------------
# The figures


@_styled
def tid_curves(inputs: Inputs, norm: str = "bn") -> Figure:
    """Mean and variance TID of ``norm`` over training, one line per norm module, CV vs NLP, with the floor."""
    title = f"{norm_label(norm)}: training–inference discrepancy over training, per layer (online, mean over seeds)"
    tid = inputs.tid
    tid = tid[(tid["method"] == "online") & (tid["norm"] == norm) & tid["kind"].isin(list(TID_KINDS))]
    runs = inputs.runs[inputs.runs["norm"] == norm]
    datasets = _dataset_order(runs, tid)
    if not datasets:
        return _empty_figure(title, inputs, f"no {norm_label(norm)} runs, and no online TID in tid.csv")
    placements = _ordered(pd.concat([runs["placement"], tid["placement"]]), ["post", "pre"])
    rows = [(k, p) for k in TID_KINDS for p in placements]
    fig, axes = _new_figure(len(rows), len(datasets), sharey="row")  # one scale per row: CV vs NLP at a glance
    cmap = matplotlib.colormaps["viridis"]
    diverged = _diverged_ids(inputs)
    floors_seen: dict[str, Line2D] = {}
    any_diverged = False
    for j, dataset in enumerate(datasets):
        for i, (kind, placement) in enumerate(rows):
            ax = axes[i, j]
            sub = tid[(tid["dataset"] == dataset) & (tid["placement"] == placement) & (tid["kind"] == kind)]
            counts = _run_counts(inputs, dataset=dataset, placement=placement, norm=norm)
            if i == 0:
                ax.set_title(_column_title(inputs, dataset, tid))
            if j == 0:
                ax.set_ylabel(f"{TID_KINDS[kind].split('  ')[0]}\n{PLACEMENT_LABELS.get(placement, placement)}")
            if i == len(rows) - 1:
                ax.set_xlabel("training step")
            ok = sub[~sub["run_id"].isin(diverged)]
            if not len(sub):
                _no_data(ax, f"{cell_label(norm, placement)}: no online TID" + _status_note(counts))
                continue
            modules = sorted(ok["module"].unique(), key=_module_key)
            curves = ok.groupby(["module", "step"])["value"].mean()
            for m, module in enumerate(modules):
                c = curves.loc[module]
                ax.plot(c.index, c.values, color=cmap(0.9 * m / max(len(modules) - 1, 1)), lw=1.1)
            bad = sub[sub["run_id"].isin(diverged)].groupby(["run_id", "step"], as_index=False)["value"].max()
            any_diverged |= _draw_diverged(ax, bad)
            _draw_floors(ax, noise_floors(inputs, dataset, placement, norm, kind), floors_seen)
            _log_axis(ax)
            note = _status_note(counts)
            if note:
                ax.text(0.98, 0.97, note.strip(" []"), transform=ax.transAxes, ha="right", va="top", fontsize=7,
                        color=DIVERGED_COLOR)
    sm = ScalarMappable(cmap=cmap, norm=Normalize(0, 0.9))
    cbar = fig.colorbar(sm, ax=axes, location="right", shrink=0.6, pad=0.01, ticks=[0, 0.9])
    cbar.ax.set_yticklabels(["first norm", "last norm"])
    cbar.set_label("depth of the norm module (forward order)")
    handles = list(floors_seen.values()) + ([_DIVERGED_HANDLE] if any_diverged else [])
    return _finish(fig, title, inputs, handles,
                   note="TID is dimensionless; log scale; a TID on its floor only reflects finite batches", ncol=3)


def _per_run_module_mean(tid: pd.DataFrame) -> pd.DataFrame:
    """Per run and step, the TID averaged over the run's norm modules."""
    return tid.groupby(ID_COLUMNS + ["kind", "step"], as_index=False)["value"].mean()


@_styled
def tid_bn_vs_rbn(inputs: Inputs, norms: tuple[str, ...] = ("bn", "rbn")) -> Figure:
    """BN vs RBN TID over training (mean over modules; mean ± sd over seeds), with the floor."""
    title = (f"{' vs '.join(norm_label(n) for n in norms)}: TID over training "
             "(mean over norm modules; band ± 1 sd over seeds)")
    tid = inputs.tid
    tid = tid[(tid["method"] == "online") & tid["norm"].isin(norms) & tid["kind"].isin(list(TID_KINDS))]
    runs = inputs.runs[inputs.runs["norm"].isin(norms)]
    datasets = _dataset_order(runs, tid)
    if not datasets:
        return _empty_figure(title, inputs, f"no {'/'.join(norm_label(n) for n in norms)} runs with online TID")
    fig, axes = _new_figure(len(TID_KINDS), len(datasets), sharey="row")
    per_run = _per_run_module_mean(tid)
    diverged = _diverged_ids(inputs)
    floors_seen: dict[str, Line2D] = {}
    cells_seen: dict[str, Line2D] = {}
    any_diverged = False
    for j, dataset in enumerate(datasets):
        for i, kind in enumerate(TID_KINDS):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(_column_title(inputs, dataset, tid))
            if j == 0:
                ax.set_ylabel(TID_KINDS[kind].split("  ")[0])
            if i == len(TID_KINDS) - 1:
                ax.set_xlabel("training step")
            sub = per_run[(per_run["dataset"] == dataset) & (per_run["kind"] == kind)]
            if not len(sub):
                _no_data(ax, "no online TID" + _status_note(_run_counts(inputs, dataset=dataset)))
                continue
            for (norm, placement), cell in sub.groupby(["norm", "placement"]):
                ok = cell[~cell["run_id"].isin(diverged)]
                stats = _mean_sd(ok, ["step"])
                color, ls = NORM_COLORS.get(norm, "0.3"), PLACEMENT_STYLES.get(placement, "-")
                label = cell_label(norm, placement)
                ax.plot(stats["step"], stats["mean"], color=color, ls=ls)
                ax.fill_between(stats["step"], stats["mean"] - stats["sd"].fillna(0),
                                stats["mean"] + stats["sd"].fillna(0), color=color, alpha=0.15, lw=0)
                cells_seen.setdefault(label, Line2D([], [], color=color, ls=ls, label=label))
                any_diverged |= _draw_diverged(ax, cell[cell["run_id"].isin(diverged)], color=color)
            placement0 = sub["placement"].iloc[0]
            _draw_floors(ax, noise_floors(inputs, dataset, placement0, norms[0], kind), floors_seen)
            _log_axis(ax)
    handles = list(cells_seen.values()) + list(floors_seen.values()) + ([_DIVERGED_HANDLE] if any_diverged else [])
    return _finish(fig, title, inputs, handles, note="log scale", ncol=4)


@_styled
def tid_decomposition(inputs: Inputs) -> Figure:
    """The probe's TID decomposition per dataset and norm: floor / batch structure / lag, side by side."""
    title = "TID decomposition at the end of training (probe; mean over norm modules; bars: mean over seeds ± 1 sd)"
    dec = inputs.tid_decomposition
    dec = dec[dec["kind"].isin(list(TID_KINDS))]
    datasets = _dataset_order(dec)
    if not datasets:
        return _empty_figure(title, inputs, "tid_decomposition.csv has no rows (no probed run)")
    norms = _ordered(dec["norm"], BATCH_STAT_NORMS + LN_FAMILY)
    placements = _ordered(pd.concat([dec["placement"], inputs.runs["placement"]]), ["post", "pre"])
    per_run = dec.groupby(ID_COLUMNS + ["kind", "component", "method"], as_index=False)["value"].mean()
    runs = inputs.runs

    def cells_of(dataset: str) -> list[tuple[str, str]]:
        """The dataset's configured (norm, placement) cells, so that 'no probe' marks a real gap."""
        every = [(n, p) for n in norms for p in placements]
        if not len(runs):
            return every
        mine = runs[runs["dataset"] == dataset]
        configured = set(zip(mine["norm"], mine["placement"], strict=True))
        return [c for c in every if c in configured] or every

    widest = max(len(cells_of(d)) for d in datasets)
    fig, axes = _new_figure(len(datasets), len(TID_KINDS), panel=(max(4.0, 0.75 * widest), 2.4))
    comp_colors = dict(zip(COMPONENTS, sns.color_palette("Set2", 3), strict=True))
    width = 0.8 / len(COMPONENTS)
    for i, dataset in enumerate(datasets):
        for j, kind in enumerate(TID_KINDS):
            ax = axes[i, j]
            ax.set_title(f"{_column_title(inputs, dataset, dec)} — {TID_KINDS[kind].split('  ')[0]}")
            sub = per_run[(per_run["dataset"] == dataset) & (per_run["kind"] == kind)]
            cells = cells_of(dataset)
            if not len(sub):
                _no_data(ax, "no probed run of this dataset")
                continue
            for x, (norm, placement) in enumerate(cells):
                cell = sub[(sub["norm"] == norm) & (sub["placement"] == placement)]
                for k, comp in enumerate(COMPONENTS):
                    vals = cell.loc[cell["component"] == comp, "value"]
                    if not len(vals):
                        continue
                    pos = x + (k - 1) * width
                    ax.bar(pos, vals.mean(), width, color=comp_colors[comp], yerr=vals.std() if len(vals) > 1 else None,
                           error_kw=dict(lw=0.8, capsize=2), zorder=2)
                    ax.plot(np.full(len(vals), pos), vals, "k.", ms=3, zorder=3)
                observed = cell.loc[cell["component"] == "observed", "value"]
                if len(observed):
                    ax.plot(x, observed.mean(), marker="D", color="black", ms=4, ls="none", zorder=4)
                note = _status_note(_run_counts(inputs, dataset=dataset, placement=placement, norm=norm))
                if note:
                    ax.text(x, 0.98, note.strip(" []"), transform=ax.get_xaxis_transform(), ha="center", va="top",
                            fontsize=6.5, color=DIVERGED_COLOR)
                if not len(cell):
                    ax.text(x, 0.5, "no probe", transform=ax.get_xaxis_transform(), ha="center", fontsize=6.5,
                            color="0.4", rotation=90)
            shadow = set(sub.loc[sub["method"] == "shadow", "norm"])
            ax.set_xticks(range(len(cells)))
            ax.set_xticklabels([f"{norm_label(n)}{'*' if n in shadow else ''}\n{p}" for n, p in cells], fontsize=7)
            ax.axhline(0, color="0.3", lw=0.6)
            ax.set_ylabel("TID (dimensionless)")
    handles = [Patch(color=comp_colors[c], label=COMPONENTS[c]) for c in COMPONENTS]
    handles.append(Line2D([], [], marker="D", color="black", ls="none", label="observed TID (vs running stats)"))
    return _finish(fig, title, inputs, handles, ncol=4,
                   note="an 'explosion' is growth of structure or lag, not of the floor · "
                        "* = shadow: BN statistics of the input of a norm without batch statistics (no lag)")


def late_tid(inputs: Inputs, norm: str = "bn", kind: str = "mean_tid", last: float = 0.25) -> pd.DataFrame:
    """Per completed run of ``norm``: its online TID over the last ``last`` of its logged steps, mean over modules."""
    tid = inputs.tid
    tid = _completed(inputs, tid[(tid["method"] == "online") & (tid["norm"] == norm) & (tid["kind"] == kind)])
    if not len(tid):
        return pd.DataFrame(columns=ID_COLUMNS + ["tid"])
    top = tid.groupby("run_id")["step"].transform("max")
    late = tid[tid["step"] >= top * (1 - last)]
    return late.groupby(ID_COLUMNS, as_index=False)["value"].mean().rename(columns={"value": "tid"})


def primary_scores(inputs: Inputs, stats: str = "population") -> tuple[pd.DataFrame, str]:
    """The primary metric per completed run and the split used (test, else valid)."""
    scores = inputs.scores
    scores = scores[_as_bool(scores["primary"]) & (scores["stats"] == stats)]
    split = "test" if (scores["split"] == "test").any() else "valid"
    return scores[scores["split"] == split], split


def bn_ln_gap(inputs: Inputs, bn: str = "bn", ln: str = "ln") -> pd.DataFrame:
    """Per dataset × placement × seed: (BN − LN) on the primary metric, + = BN better, in % of LN's mean."""
    scores, _ = primary_scores(inputs)
    key = ["dataset", "placement", "seed"]
    a = scores[scores["norm"] == bn][key + ["value", "higher_is_better", "metric"]]
    b = scores[scores["norm"] == ln][key + ["value"]]
    both = a.merge(b, on=key, suffixes=("_bn", "_ln"))
    if not len(both):
        return pd.DataFrame(columns=key + ["gap_pct", "metric"])
    ln_mean = both.groupby(["dataset", "placement"])["value_ln"].transform("mean").abs()
    sign = np.where(_as_bool(both["higher_is_better"]), 1.0, -1.0)
    both["gap_pct"] = sign * (both["value_bn"] - both["value_ln"]) / ln_mean * 100
    return both[key + ["gap_pct", "metric"]]


def _correlation_text(corr: pd.DataFrame | None) -> str:
    """One line per row of the stats' correlations.csv (its column names belong to stats.py: matched loosely)."""
    if corr is None:
        return "ρ not shown: results/stats/correlations.csv absent"
    if not len(corr):
        return "ρ not shown: correlations.csv has no rows"
    # the figure plots the observed mean TID: its correlations here, the decomposition's in the CSV
    for col, keep in (("tid_measure", "observed"), ("kind", "mean_tid")):
        if col in corr.columns and (corr[col] == keep).any():
            corr = corr[corr[col] == keep]
    cols = {c.lower(): c for c in corr.columns}

    def pick(*names):
        for n in names:  # exact names first, then prefixes of two letters or more ('p' is not 'placement')
            if n in cols:
                return cols[n]
        for n in names:
            hit = [c for low, c in cols.items() if len(n) > 1 and low.startswith(n)]
            if hit:
                return hit[0]
        return None

    rho = pick("rho", "spearman", "estimate", "statistic", "correlation", "r")
    lo, hi = pick("ci_low", "ci_lo", "low"), pick("ci_high", "ci_hi", "high")
    p, n = pick("p_holm", "p_adj", "p_value", "pvalue", "p"), pick("n_datasets", "n")
    label = [c for c in (pick("placement"), pick("kind"), pick("x")) if c is not None]
    lines = []
    for _, row in corr.iterrows():
        head = " ".join(str(row[c]) for c in label)
        text = f"{head}: Spearman ρ = {row[rho]:.2f}" if rho is not None else head
        if lo is not None and hi is not None:
            text += f" [{row[lo]:.2f}, {row[hi]:.2f}]"
        if p is not None:
            text += f", {p} = {row[p]:.3g}"
        if n is not None:
            text += f", n = {row[n]}"
        lines.append(text)
    return "\n".join(lines) + "\n(observed mean TID; its parts and the variance TID: correlations.csv)"


def _place_labels(ax, points: list[tuple[float, float, str, object]], fontsize: float = 7) -> None:
    """Label points so that labels do not overlap: greedy over a few offsets, in display points."""
    ax.autoscale_view()
    to_points = ax.transData + ax.figure.dpi_scale_trans.inverted()
    placed: list[tuple[float, float, float, float]] = []
    offsets = [(4, 3), (4, -10), (4, 10), (-4, 3), (4, -17), (-4, -10), (4, 17), (4, -24), (-4, 10)]
    for x, y, text, color in sorted(points, key=lambda p: (-p[1], p[0])):
        px, py = to_points.transform((x, y)) * 72
        w, h = 0.55 * fontsize * len(text), fontsize + 1
        for dx, dy in offsets:
            x0 = px + dx if dx >= 0 else px + dx - w
            box = (x0, py + dy, x0 + w, py + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), ha="left" if dx >= 0 else "right",
                    fontsize=fontsize, color=color)


def late_tid_table(inputs: Inputs, norm: str = "bn") -> pd.DataFrame:
    """Per dataset × placement: late-training mean TID (mean, sd, n over seeds), its floor, and TID / floor."""
    key = ["task", "dataset", "placement"]
    tid = late_tid(inputs, norm)
    if not len(tid):
        return pd.DataFrame(columns=key + ["tid", "tid_sd", "tid_n", "floor", "floor_source", "tid_over_floor"])
    table = _mean_sd(tid, key, "tid").rename(columns={"mean": "tid", "sd": "tid_sd", "n": "tid_n"})
    unknown = [(math.nan, "no floor: tokens per batch unknown", "")]
    floors = [(noise_floors(inputs, d, p, norm, "mean_tid") or unknown)[0]
              for d, p in zip(table["dataset"], table["placement"], strict=True)]
    table["floor"] = [f[0] for f in floors]
    table["floor_source"] = [f[1] for f in floors]
    table["tid_over_floor"] = table["tid"] / table["floor"]
    return table


def tid_gap_points(inputs: Inputs) -> pd.DataFrame:
    """The points of ``tid_vs_gap``: :func:`late_tid_table` joined with BN − LN (% of LN; mean, sd, n)."""
    gap = bn_ln_gap(inputs)
    g = _mean_sd(gap, ["dataset", "placement"], "gap_pct").rename(
        columns={"mean": "gap", "sd": "gap_sd", "n": "gap_n"})
    return late_tid_table(inputs).merge(g, on=["dataset", "placement"])


@_styled
def tid_vs_gap(inputs: Inputs) -> Figure:
    """Per dataset, BN's late-training TID vs the BN−LN gap (claim A4), raw and in units of the floor."""
    title = "Does TID indicate BN's deficit? Per dataset: BN's late-training mean TID vs BN − LN (claim A4)"
    points = tid_gap_points(inputs)
    if not len(points):
        why = ("no completed BN run with online TID" if not len(late_tid(inputs))
               else "no dataset with both BN and LN scores")
        return _empty_figure(title, inputs, why)
    fig, axes = _new_figure(1, 2, panel=(5.0, 4.2))
    for ax, ratio in zip(axes[0], (False, True), strict=True):
        labels = []
        for placement, pts in points.groupby("placement"):
            color = sns.color_palette("dark", 2)[0 if placement == "post" else 1]
            x = pts["tid"] / pts["floor"] if ratio else pts["tid"]
            xerr = pts["tid_sd"] / pts["floor"] if ratio else pts["tid_sd"]
            ax.errorbar(x, pts["gap"], xerr=xerr.fillna(0), yerr=pts["gap_sd"].fillna(0), ls="none",
                        marker=PLACEMENT_MARKERS.get(placement, "o"), color=color, ms=6, capsize=2,
                        label=PLACEMENT_LABELS.get(placement, placement))
            for (_, row), xi in zip(pts.iterrows(), x, strict=True):
                note = _status_note(_run_counts(inputs, dataset=row["dataset"], placement=placement,
                                                norm="bn"))
                labels.append((xi, row["gap"], row["dataset"] + note, color))
                if not ratio and row["floor"] == row["floor"]:
                    ax.plot([row["floor"], xi], [row["gap"]] * 2, color="0.6", lw=0.8, zorder=0)
                    ax.plot(row["floor"], row["gap"], marker="|", color="0.3", ms=9, zorder=0)
        ax.axhline(0, color="0.3", lw=0.8, ls="--")
        _log_axis(ax, "x")
        _place_labels(ax, labels)
        ax.set_ylabel("BN − LN on the primary test metric\n(% of LN; + = BN better)")
        if ratio:
            ax.axvline(1, color="black", ls=":", lw=1.2)
            ax.set_xlabel("BN mean TID / its sampling floor (1 = at the floor)")
            ax.set_title("TID in units of its floor")
        else:
            ax.set_xlabel("BN mean TID, last quarter of training (dimensionless)")
            ax.set_title(f"raw TID (grey: sampling floor | → TID)\n{_correlation_text(inputs.correlations)}",
                         fontsize=8)
    handles = [Line2D([], [], marker=PLACEMENT_MARKERS.get(p, "o"), ls="none",
                      color=sns.color_palette("dark", 2)[0 if p == "post" else 1], label=PLACEMENT_LABELS.get(p, p))
               for p in _ordered(points["placement"], ["post", "pre"])]
    handles.append(Line2D([], [], color="0.6", marker="|", mec="0.3", label="sampling floor → TID"))
    return _finish(fig, title, inputs, handles, note="error bars ± 1 sd over seeds (gap paired by seed)")


@_styled
def eval_mode_gap(inputs: Inputs) -> Figure:
    """Population vs batch-statistics evaluation of the batch-statistics norms, per dataset (claim A1)."""
    title = "Evaluation with population statistics vs with batch statistics (claim A1; mean ± 1 sd over seeds)"
    scores, split = primary_scores(inputs)
    batch, _ = primary_scores(inputs, "batch_stats")
    batch = batch[batch["split"] == split]
    both = pd.concat([scores, batch], ignore_index=True)
    runs = inputs.runs
    norms = _ordered(pd.concat([both["norm"], runs["norm"]]), BATCH_STAT_NORMS + ["ln"])
    norms = [n for n in norms if n in BATCH_STAT_NORMS or n == "ln"]
    datasets = _dataset_order(both, runs[runs["norm"].isin(norms)])
    if not datasets or not norms:
        return _empty_figure(title, inputs, "no run of a batch-statistics norm or LN")
    ncols = min(4, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    placements = _ordered(pd.concat([both["placement"], runs["placement"]]), ["post", "pre"])
    fig, axes = _new_figure(nrows, ncols, panel=(max(3.2, 0.6 * len(norms) * len(placements) + 0.8), 2.8))
    for ax in axes.flat[len(datasets):]:
        ax.set_visible(False)
    style = {"population": dict(marker="o", mfc=None), "batch_stats": dict(marker="s", mfc="white")}
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        sub = both[both["dataset"] == dataset]
        ax.set_title(_column_title(inputs, dataset, both))
        in_runs = set(zip(runs.loc[runs["dataset"] == dataset, "norm"], runs.loc[runs["dataset"] == dataset,
                                                                                 "placement"], strict=True))
        cells = [(n, p) for n in norms for p in placements
                 if (n, p) in in_runs or ((sub["norm"] == n) & (sub["placement"] == p)).any()]
        if not len(sub):
            _no_data(ax, f"no completed run on {split}" + _status_note(_run_counts(inputs, dataset=dataset)))
            continue
        metric = sub["metric"].iloc[0]
        hib = bool(sub["higher_is_better"].iloc[0])
        for placement in placements:  # LN's level across the panel: the reference every gap is read against
            ln = sub.loc[(sub["norm"] == "ln") & (sub["placement"] == placement) & (sub["stats"] == "population"),
                         "value"]
            if len(ln):
                ax.axhline(ln.mean(), color=NORM_COLORS["ln"], ls=PLACEMENT_STYLES.get(placement, "-"), lw=0.8,
                           alpha=0.7, zorder=0)
        for x, (norm, placement) in enumerate(cells):
            color = NORM_COLORS.get(norm, "0.3")
            pair = []
            for k, stats in enumerate(("population", "batch_stats")):
                mask = (sub["norm"] == norm) & (sub["placement"] == placement) & (sub["stats"] == stats)
                vals = sub.loc[mask, "value"]
                if not len(vals):
                    continue
                pos = x + (k - 0.5) * 0.3
                ax.errorbar(pos, vals.mean(), yerr=vals.std() if len(vals) > 1 else None, color=color, capsize=2,
                            ms=6, mec=color, **{k2: v for k2, v in style[stats].items() if v is not None})
                ax.plot(np.full(len(vals), pos), vals, ".", color="0.3", ms=2.5)
                pair.append((pos, vals.mean()))
            if len(pair) == 2:
                ax.plot(*zip(*pair, strict=True), color=color, lw=0.8)
            note = _status_note(_run_counts(inputs, dataset=dataset, placement=placement, norm=norm))
            if note:
                ax.text(x, 0.02, note.strip(" []"), transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=6.5, color=DIVERGED_COLOR)
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels([f"{norm_label(n)}\n{p}" for n, p in cells], fontsize=6.5)
        ax.set_xlim(-0.6, len(cells) - 0.4)
        ax.set_ylabel(f"{split} {metric} ({'↑' if hib else '↓'} better)")
    handles = [Line2D([], [], marker="o", color="0.3", ls="none", label="population (running) statistics: eval mode"),
               Line2D([], [], marker="s", mfc="white", color="0.3", ls="none",
                      label="batch statistics at inference (train-mode norm)"),
               Line2D([], [], color=NORM_COLORS["ln"], lw=0.8, label="LN level (Post-Norm solid, Pre-Norm dashed)")]
    return _finish(fig, title, inputs, handles,
                   note="LN has no batch statistics: population only; a closed gap points at the discrepancy")


TRAINING_GROUPS = {
    "LN family (claim B4)": LN_FAMILY,
    "LN vs batch-statistics norms (claim A1)": ["ln"] + BATCH_STAT_NORMS,
}


@_styled
def training_curves(inputs: Inputs) -> Figure:
    """Train and validation loss over training, mean over seeds with a ± 1 sd band, per norm group."""
    title = "Training (solid) and validation (dashed) loss over training (mean over seeds, band ± 1 sd)"
    curves = inputs.curves
    curves = curves[(curves["metric"] == "loss") & curves["kind"].isin(["train", "valid"])]
    runs = inputs.runs
    datasets = _dataset_order(curves, runs)
    if not datasets:
        return _empty_figure(title, inputs, "curves.csv has no loss rows and runs.csv no runs")
    placements = _ordered(pd.concat([curves["placement"], runs["placement"]]), ["post", "pre"])
    present = set(curves["norm"]) | set(runs["norm"])
    groups = [(g, [n for n in ns if n in present]) for g, ns in TRAINING_GROUPS.items()]
    groups = [(g, ns) for g, ns in groups if len(ns) > (1 if "ln" in ns else 0)] or groups[:1]
    rows = [(g, ns, p) for g, ns in groups for p in placements]
    fig, axes = _new_figure(len(rows), len(datasets))
    diverged = _diverged_ids(inputs)
    seen: dict[str, Line2D] = {}
    any_diverged = False
    for j, dataset in enumerate(datasets):
        for i, (group, norms, placement) in enumerate(rows):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(_column_title(inputs, dataset, curves))
            if j == 0:
                where = PLACEMENT_LABELS.get(placement, placement)
                ax.set_ylabel(f"{group.split(' (')[0]}\n{where}\nloss (nats/token)", fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel("training step")
            sub = curves[(curves["dataset"] == dataset) & (curves["placement"] == placement)
                         & curves["norm"].isin(norms)]
            if not len(sub):
                _no_data(ax, f"{group.split(' (')[0]}, {placement}" + _status_note(
                    _run_counts(inputs, dataset=dataset, placement=placement)))
                continue
            for norm in _ordered(sub["norm"], norms):
                color = NORM_COLORS.get(norm, "0.3")
                cell = sub[sub["norm"] == norm]
                for kind, ls in (("train", "-"), ("valid", "--")):
                    part = cell[cell["kind"] == kind]
                    stats = _mean_sd(part[~part["run_id"].isin(diverged)].dropna(subset=["value"]), ["step"])
                    ax.plot(stats["step"], stats["mean"], color=color, ls=ls)
                    ax.fill_between(stats["step"], stats["mean"] - stats["sd"].fillna(0),
                                    stats["mean"] + stats["sd"].fillna(0), color=color, alpha=0.12, lw=0)
                    if kind == "train":
                        any_diverged |= _draw_diverged(ax, part[part["run_id"].isin(diverged)], color=color)
                seen.setdefault(norm, Line2D([], [], color=color, label=norm_label(norm)))
    handles = [seen[n] for n in _ordered(seen, LN_FAMILY + BATCH_STAT_NORMS)]
    handles += [Line2D([], [], color="0.3", ls="-", label="train"), Line2D([], [], color="0.3", ls="--", label="valid")]
    handles += [_DIVERGED_HANDLE] if any_diverged else []
    return _finish(fig, title, inputs, handles, ncol=8,
                   note="train loss: label-smoothed CE (+ RBN penalty), mean over the logging window")


@_styled
def conditioning(inputs: Inputs, norms: tuple[str, ...] = ("ln", "bn", "rbn")) -> Figure:
    """Condition numbers of each norm's input covariance per layer, LN vs BN vs RBN (claim A9)."""
    title = (f"Layer-wise conditioning of the norms' input features, {' vs '.join(norm_label(n) for n in norms)} "
             "(claim A9; mean ± 1 sd over seeds)")
    cond = inputs.conditioning
    cond = _completed(inputs, cond[cond["norm"].isin(norms) & cond["measure"].isin(list(MEASURES))])
    runs = inputs.runs[inputs.runs["norm"].isin(norms)]
    datasets = _dataset_order(cond, runs)
    if not datasets:
        return _empty_figure(title, inputs, f"no probed {'/'.join(norm_label(n) for n in norms)} run")
    fig, axes = _new_figure(len(MEASURES), len(datasets), panel=(3.2, 2.3))
    seen: dict[tuple[str, str], Line2D] = {}
    for j, dataset in enumerate(datasets):
        sub = cond[cond["dataset"] == dataset]
        modules = sorted(sub["module"].unique(), key=_module_key)
        xpos = {m: k for k, m in enumerate(modules)}
        for i, measure in enumerate(MEASURES):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(_column_title(inputs, dataset, cond))
            if j == 0:
                ax.set_ylabel(MEASURES[measure])
            part = sub[sub["measure"] == measure]
            if not len(part):
                _no_data(ax, "no conditioning rows" + _status_note(_run_counts(inputs, dataset=dataset)))
                continue
            cells = part.groupby(["norm", "placement"])
            for k, ((norm, placement), cell) in enumerate(cells):
                stats = _mean_sd(cell, ["module"])
                stats = stats.sort_values("module", key=lambda s: s.map(xpos))
                x = stats["module"].map(xpos) + (k - (cells.ngroups - 1) / 2) * 0.06
                color, ls = NORM_COLORS.get(norm, "0.3"), PLACEMENT_STYLES.get(placement, "-")
                label = cell_label(norm, placement)
                ax.errorbar(x, stats["mean"], yerr=stats["sd"].fillna(0), color=color, ls=ls,
                            marker=PLACEMENT_MARKERS.get(placement, "o"), ms=3.5, capsize=2, lw=1.1)
                seen.setdefault((norm, placement), Line2D([], [], color=color, ls=ls, label=label,
                                                          marker=PLACEMENT_MARKERS.get(placement, "o")))
            missing = [f"{norm_label(n)} {p}{_status_note(_run_counts(inputs, dataset=dataset, norm=n, placement=p))}"
                       for n in norms for p in ("post", "pre")
                       if _status_note(_run_counts(inputs, dataset=dataset, norm=n, placement=p))]
            if missing and i == 0:
                ax.text(0.02, 0.97, "\n".join(missing), transform=ax.transAxes, va="top", fontsize=6.5,
                        color=DIVERGED_COLOR)
            _log_axis(ax)
            ax.set_xticks(range(len(modules)))
            ax.set_xticklabels([module_label(m) for m in modules], rotation=45, ha="right", fontsize=7)
    handles = [seen[(n, p)] for n in norms for p in ("post", "pre") if (n, p) in seen]
    return _finish(fig, title, inputs, handles,
                   note="covariance eigenvalues of each norm's input (dimensionless ratios; Cmax in squared "
                        "feature units); log scale; x: norm module in forward order", ncol=6)


FIGURE_FUNCTIONS: dict[str, Callable[[Inputs], Figure]] = {
    "tid_curves": tid_curves,
    "tid_decomposition": tid_decomposition,
    "tid_bn_vs_rbn": tid_bn_vs_rbn,
    "tid_vs_gap": tid_vs_gap,
    "eval_mode_gap": eval_mode_gap,
    "training_curves": training_curves,
    "conditioning": conditioning,
}
assert tuple(FIGURE_FUNCTIONS) == FIGURES


# --------------------------------------------------------------------------------------------------
# Writing


def save_figure(fig: Figure, out_dir: str | Path, name: str, dpi: int = 150) -> list[Path]:
    """``NAME.pdf`` and ``NAME.png`` in ``out_dir``, each written to a temporary file and renamed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("pdf", "png"):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{ext}.tmp", dir=out_dir)
        os.close(fd)
        try:
            # fixed metadata: the same tables give byte-identical PDFs
            meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
            fig.savefig(tmp, format=ext, dpi=dpi, metadata=meta)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a figure is for everyone
            os.replace(tmp, out_dir / f"{name}.{ext}")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(out_dir / f"{name}.{ext}")
    return written


def make_figures(tidy_dir: str | Path, stats_dir: str | Path | None, out_dir: str | Path,
                 names: tuple[str, ...] = FIGURES) -> list[Path]:
    """Every figure of ``names`` from the tables; returns the files written."""
    unknown = [n for n in names if n not in FIGURE_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; valid: {', '.join(FIGURES)}")
    inputs = load_inputs(tidy_dir, stats_dir)
    written = []
    for name in names:
        written += save_figure(FIGURE_FUNCTIONS[name](inputs), out_dir, name)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tidy", required=True, type=Path, help="the tidy tables (normlab collect --out)")
    parser.add_argument("--stats", type=Path, default=None,
                        help="the statistics (normlab stats --out); its files may be absent")
    parser.add_argument("--out", required=True, type=Path, help="folder for NAME.pdf and NAME.png")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES), metavar="NAME",
                        help=f"draw only these figures (default: all of {', '.join(FIGURES)})")


def run(args: argparse.Namespace) -> int:
    if not args.tidy.is_dir():
        raise SystemExit(f"normlab figures: {args.tidy} is not a folder; run `normlab collect --out {args.tidy}` first")
    inputs_absent = [f"{n}.csv" for n in TIDY_TABLES if not (args.tidy / f"{n}.csv").is_file()]
    if inputs_absent:
        print(f"normlab figures: absent in {args.tidy}: {', '.join(inputs_absent)} (their panels say so)")
    for path in make_figures(args.tidy, args.stats, args.out, tuple(args.only)):
        print(path)
    return 0
