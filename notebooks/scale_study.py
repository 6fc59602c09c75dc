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
# and a ViT control. This notebook re-derives `paper_tables/scale_study.md` from the tidy tables: per
# point, BN's end-of-training mean TID (the probe's `observed`), the measured i.i.d. sampling floor,
# their ratio, the batch-structure excess and the running-statistics lag, and the gaps to LN.
#
# A ratio near 1 means BN's batch statistics are as far from the population as random batches of the
# same size would be: nothing for RBN to fix. The gaps carry a CI only where two or more seeds ran.

# %% tags=["parameters"]
tidy_dir = "results/tidy"
stats_dir = "results/stats"
tables_dir = "paper_tables"
figures_dir = "figures"

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from normlab.analysis import scale as S
from normlab.analysis.notebooks import open_inputs, show_figure

tidy_dir, stats_dir, tables_dir, figures_dir, inputs = open_inputs(tidy_dir, stats_dir, tables_dir, figures_dir)
points_file = Path(tidy_dir).parent / "sweep_points.csv"  # written by the workflow (rule sweep_points)
points = S.read_points(points_file) if points_file.is_file() else None
if points is None or points.empty or inputs.comparisons is None:
    print(f"no sweep in this configuration ({points_file} absent or empty, or no statistics): nothing to show")
    table = None
else:
    tid_summary = pd.read_csv(Path(stats_dir) / "tid_summary.csv")
    table = S.scale_table(points, tid_summary, inputs.comparisons)

# %% [markdown]
# ## The table, recomputed (compare with `paper_tables/scale_study.csv`)

# %%
if table is not None:
    display(table[["corpus", "factor", "level", "placement", "ln_mean", "bn_gap", "bn_gap_ci_low", "bn_gap_ci_high",
                   "rbn_gap", "bn_tid", "bn_floor", "bn_excess", "bn_structure", "bn_lag", "bn_seeds"]])
committed = Path(tables_dir) / "scale_study.csv"
if table is not None and committed.is_file():
    same = pd.read_csv(committed, dtype={"level": str})
    cols = ["bn_gap", "bn_excess"]
    print("matches the committed table:",
          bool(((same[cols] - table[cols]).abs().fillna(0) < 1e-9).all().all()))

# %% [markdown]
# ## Findings (generated from the table)

# %%
for line in S.findings(table) if table is not None else []:
    print("-", line)

# %% [markdown]
# ## TID excess over the noise floor vs scale, and one figure per factor

# %%
if table is not None:
    show_figure(S.summary_figure(inputs, table, list(dict.fromkeys(points["factor"]))))
    runs_tid = S.per_run_tid(tid_summary)
    for factor in dict.fromkeys(points["factor"]):
        show_figure(S.factor_figure(inputs, table, runs_tid, points, factor))
