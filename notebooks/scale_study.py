# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The scale study: where do TID growth and BN's deficit appear? (config/scale.yaml)
#
# One factor at a time around a base point (training steps, depth, width, learning rate, Post/Pre
# placement, sentence length at a fixed token budget), for LN, BN and RBN, on translation, POS tagging
# and a ViT control. This notebook re-derives `paper_tables/scale_study.md` from the statistics: per
# point, BN's TID against its floor (the declared summary over layers and the first BN layer), the
# excess in quadrature, the lag against the running average's own noise, and the gaps to LN.
#
# A ratio near 1 means BN's batches are as far from the population as random batches of the same
# size: nothing for RBN to fix. The gaps carry a CI only where two or more seeds ran.

# %% tags=["parameters"]
# the scale study's committed outputs (config/scale.yaml's workdir), relative to the repository root
tidy_dir = "scale_study/results/tidy"
stats_dir = "scale_study/results/stats"
tables_dir = "scale_study/paper_tables"
figures_dir = "scale_study/figures"

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from normlab.analysis import scale as S
from normlab.analysis.notebooks import open_inputs, show_figure, shown_path
from normlab.analysis.plots import scale as P

tidy_dir, stats_dir, tables_dir, figures_dir, inputs = open_inputs(tidy_dir, stats_dir, tables_dir, figures_dir)
points_file = Path(tidy_dir).parent / "sweep_points.csv"  # written by the workflow (rule sweep_points)
points = S.read_points(points_file) if points_file.is_file() else None
if points is None or points.empty or inputs.comparisons.empty:
    print(f"no sweep in this configuration ({shown_path(points_file)} absent or empty, or no statistics): "
          "nothing to show")
    table = None
else:
    table = S.scale_table(points, inputs.stats, inputs.declared)

# %% [markdown]
# ## The table, recomputed (compare with `paper_tables/scale_study.csv`)

# %%
if table is not None:
    display(table[["corpus", "factor", "level", "placement", "testable", "ln_mean", "bn_gap", "bn_gap_ci_low",
                   "bn_gap_ci_high", "rbn_gap", "bn_tid", "bn_floor", "bn_ratio", "bn_ratio_first",
                   "bn_excess_sentence", "bn_excess_token", "bn_lag_ratio", "bn_seeds"]])
committed = Path(tables_dir) / "scale_study.csv"
if table is not None and committed.is_file():
    same = pd.read_csv(committed, dtype={"level": str})
    cols = ["bn_gap", "bn_ratio", "bn_ratio_first"]
    print("matches the committed table:",
          bool(((same[cols] - table[cols]).abs().fillna(0) < 1e-9).all().all()))

# %% [markdown]
# ## Findings (generated from the table)

# %%
for line in S.findings(table) if table is not None else []:
    print("-", line)

# %% [markdown]
# ## TID against its floor vs scale, and one figure per factor

# %%
if table is not None:
    factors = list(dict.fromkeys(points["factor"]))
    show_figure(P.summary_figure(inputs, table, factors))
    for factor in factors:
        show_figure(P.factor_figure(inputs, table, factor))
