"""tid_vs_gap: claim A4 -- BN's TID (the declared summary of the paper's observed TID, the one the
correlation uses) against BN − LN (relative, + = BN better) per testable setting, the points and the ρ
of ``normlab stats`` (tid_gap, correlations); right: the same points as ranks, which is what
Spearman's ρ measures, so that one setting does not flatten the rest."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..labels import PLACEMENT_LABELS, TID_SUMMARY_LABELS
from .inputs import Inputs
from .style import PLACEMENT_MARKERS, empty_figure, finish, log_axis, new_figure, styled

PLACEMENT_COLORS = {"post": "#1f3b73", "pre": "#b35806"}


def correlation_text(inputs: Inputs, placement: str) -> str:
    corr = inputs.correlations
    sel = corr[(corr["placement"] == placement) & (corr["kind"] == "mean_tid") & (corr["tid_measure"] == "observed")
               & (corr["tid_summary"] == inputs.declared)]
    if sel.empty:
        return f"{placement}: no correlation (stats correlations)"
    r = sel.iloc[0]
    if not np.isfinite(r["rho"]):
        return f"{placement}: ρ undefined ({r['note']}), n = {int(r['n_settings'])}"
    ci = f" [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if np.isfinite(r["ci_low"]) else ""
    return (f"{PLACEMENT_LABELS.get(placement, placement)}: Spearman ρ = {r['rho']:+.2f}{ci}, p = {r['p']:.3g} "
            f"({r['p_method'].split(' (')[0]}), n = {int(r['n_settings'])}")


@styled
def draw(inputs: Inputs) -> Figure:
    declared = inputs.declared
    title = (f"Does TID indicate BN's deficit? BN's end-of-training mean TID ({TID_SUMMARY_LABELS[declared]}) vs "
             "BN − LN per testable setting (claim A4)")
    pts = inputs.tid_gap
    pts = pts[(pts["kind"] == "mean_tid") & (pts["tid_measure"] == "observed") & (pts["tid_summary"] == declared)]
    inc = pts[pts["included"]]
    if inc.empty:
        why = "no testable setting with BN and LN runs" if len(pts) else "stats tid_gap has no BN point"
        return empty_figure(title, inputs.runs, why)
    fig, axes = new_figure(1, 2, panel=(5.0, 4.2))
    raw, ranks = axes[0]
    texts = []
    for placement, g in inc.groupby("placement"):
        color, marker = PLACEMENT_COLORS.get(placement, "0.3"), PLACEMENT_MARKERS.get(placement, "o")
        y = 100 * g["gap_rel"]
        err = 100 * np.vstack([(g["gap_rel"] - g["gap_rel_ci_low"]).clip(lower=0).fillna(0),
                               (g["gap_rel_ci_high"] - g["gap_rel"]).clip(lower=0).fillna(0)])
        raw.errorbar(g["tid"], y, xerr=g["tid_sd"].fillna(0), yerr=err, ls="none", marker=marker, color=color, ms=6,
                     capsize=2)
        ranks.plot(g["rank_tid"], g["rank_gap"], ls="none", marker=marker, color=color, ms=7)
        for r in g.itertuples():
            corpus, _, point = r.dataset.partition(".")
            label = r.dataset if len(inc) <= 12 or not point else f"{corpus[:5]}·{point}"
            raw.annotate(label, (r.tid, 100 * r.gap_rel), textcoords="offset points", xytext=(4, 3), fontsize=6.5,
                         color=color)
            ranks.annotate(label, (r.rank_tid, r.rank_gap), textcoords="offset points", xytext=(4, 3), fontsize=6.5,
                           color=color)
        texts.append(correlation_text(inputs, placement))
    log_axis(raw, "x")
    raw.set_yscale("symlog", linthresh=1.0)
    raw.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ranks.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ranks.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    raw.axhline(0, color="0.3", lw=0.8, ls="--")
    raw.set_xlabel("BN mean TID (dimensionless, log scale)")
    raw.set_ylabel("BN − LN on the primary test metric\n(% of LN, + = BN better; symmetric log)")
    raw.set_title("values (error bars: ± 1 sd of TID over seeds; 95 % CI of the gap)", fontsize=8)
    ranks.set_xlabel("rank of BN's TID among the testable settings")
    ranks.set_ylabel("rank of BN − LN")
    ranks.set_title("ranks: what Spearman's ρ measures\n" + "\n".join(textwrap.fill(t, 70) for t in texts),
                    fontsize=8)
    excluded = pts[~pts["included"]]
    handles = [Line2D([], [], marker=PLACEMENT_MARKERS.get(p, "o"), ls="none", color=PLACEMENT_COLORS.get(p, "0.3"),
                      label=PLACEMENT_LABELS.get(p, p)) for p in sorted(inc["placement"].unique())]
    counts = ", ".join(f"{n} {PLACEMENT_LABELS.get(p, p)}" for p, n in inc.groupby("placement").size().items())
    note = (f"n = {len(inc)} points drawn ({counts}; each placement's ρ is over its own points)"
            + (f"; {len(excluded)} not drawn: not testable or no seed pair" if len(excluded) else "")
            + "; the expected sign under the claim is negative")
    return finish(fig, title, inputs.runs, handles, note=note)
