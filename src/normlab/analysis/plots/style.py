"""The figures' shared style and drawing helpers: one colour per norm, one line style per placement,
the panel that says "no data", log axes with plain numbers, titles that name the configuration.

Nothing here computes a statistic: the figures draw the tables of ``normlab stats``.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable

import matplotlib
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import NORM_ORDER, PLACEMENT_LABELS, TASK_ORDER, norm_label

NO_RUNS = "no runs of this kind in this configuration"
# ten norms, ten clearly different colours (matplotlib's qualitative tab10: no two alike)
NORM_COLORS = {"ln": "tab:blue", "bn": "tab:red", "rbn": "tab:green", "powernorm": "tab:purple",
               "pn_vanilla": "tab:pink", "ln_simple": "tab:orange", "adanorm": "tab:brown", "detachnorm": "tab:olive",
               "rmsnorm": "tab:cyan", "none": "tab:gray", "dyt": "black"}
assert set(NORM_COLORS) == set(NORM_ORDER) and len(set(NORM_COLORS.values())) == len(NORM_COLORS)
PLACEMENT_STYLES = {"post": "-", "pre": "--"}
PLACEMENT_MARKERS = {"post": "o", "pre": "s"}
DIVERGED_COLOR = "#d62728"
STYLE = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "figure.titlesize": 11, "lines.linewidth": 1.4, "axes.titleweight": "normal",
    "figure.dpi": 100,
}
DIVERGED_HANDLE = Line2D([], [], color=DIVERGED_COLOR, marker="x", ls=":", lw=1,
                         label="diverged run (× = last logged step)")


def norm_color(norm: str):
    return NORM_COLORS.get(norm, "0.3")


def styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw inside the shared style without touching the caller's global rcParams."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def new_figure(nrows: int, ncols: int, panel: tuple[float, float] = (3.0, 2.3), **kw):
    # A bare Figure, not pyplot: no backend, no global figure list, the same in a notebook and the CLI.
    fig = Figure(figsize=(max(panel[0] * ncols, 6.5), panel[1] * nrows + 1.3), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def no_data(ax, detail: str = "") -> None:
    text = textwrap.fill(NO_RUNS, 34) + (f"\n({textwrap.fill(detail, 40)})" if detail else "")
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.35")
    # tick labels off, not ticks removed: the panel may share its axes with panels that have data
    ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False, which="both")
    ax.grid(False)


def panel_note(ax, text: str, where: str = "top", color: str = "0.3") -> None:
    y, va = (0.97, "top") if where == "top" else (0.03, "bottom")
    ax.text(0.02, y, textwrap.fill(text, 48), transform=ax.transAxes, ha="left", va=va, fontsize=6.5, color=color)


def log_axis(ax, which: str = "y") -> None:
    """Log scale with plain numbers (0.02, not 2×10⁻²); minor ticks labelled only on a short range."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")

    def minor(v: float, _pos) -> str:
        lo, hi = sorted(axis.get_view_interval())
        decades = math.log10(hi / lo) if lo > 0 else math.inf
        mantissa = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        shown = set(range(1, 10)) if decades < 0.6 else {2, 3, 5} if decades < 1.3 else {3} if decades < 2.2 else set()
        return f"{v:.3g}" if mantissa in shown else ""

    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    axis.set_minor_formatter(ticker.FuncFormatter(minor))


def ordered(values, order) -> list[str]:
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def dataset_order(*frames: pd.DataFrame) -> list[str]:
    """Datasets, image (CV) first, then LM, then the other NLP tasks (the papers' CV-vs-NLP contrast)."""
    frames = [f[["task", "dataset"]] for f in frames if len(f) and {"task", "dataset"} <= set(f.columns)]
    if not frames:
        return []
    pairs = pd.concat(frames, ignore_index=True).drop_duplicates()
    rank = {t: i for i, t in enumerate(TASK_ORDER)}
    pairs = pairs.assign(r=pairs["task"].map(lambda t: rank.get(t, len(rank))))
    return pairs.sort_values(["r", "dataset"])["dataset"].drop_duplicates().tolist()


def column_title(dataset: str, task: str) -> str:
    return f"{'CV' if task == 'image' else 'NLP'} · {dataset} ({task})"


def status_note(counts: dict[str, int]) -> str:
    bad = [f"{counts[s]} {s}" for s in ("diverged", "missing") if counts.get(s)]
    return f" [{', '.join(bad)}]" if bad else ""


def subtitle(runs: pd.DataFrame, extra: str = "") -> str:
    if not len(runs):
        return "configuration unknown (runs.csv absent or empty)" + (f" · {extra}" if extra else "")
    configs = ", ".join(sorted(runs["config_name"].astype(str).unique()))
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


def finish(fig: Figure, title: str, runs: pd.DataFrame, handles=None, note: str = "", ncol: int = 6) -> Figure:
    width = int(fig.get_figwidth() * 11.5)  # characters per line at the suptitle's size (~6 pt each)
    fig.suptitle(f"{textwrap.fill(title, width)}\n{textwrap.fill(subtitle(runs, note), width)}")
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(ncol, len(handles)), frameon=False)
    return fig


def empty_figure(title: str, runs: pd.DataFrame, detail: str) -> Figure:
    fig, axes = new_figure(1, 1, panel=(6.5, 2.5))
    no_data(axes[0, 0], detail)
    return finish(fig, title, runs)


def draw_diverged(ax, x, y, color=DIVERGED_COLOR) -> None:
    """One diverged run as a thin dotted line ending in ×."""
    ax.plot(x, y, color=color, ls=":", lw=0.9, zorder=2)
    if len(x):
        ax.plot(x[-1], y[-1], marker="x", color=DIVERGED_COLOR, ms=7, mew=2, zorder=5)


def cell_label(norm: str, placement: str) -> str:
    return f"{norm_label(norm)} {PLACEMENT_LABELS.get(placement, placement)}"
