# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Performance: LN vs BN vs RBN (and PowerNorm), Post-Norm and Pre-Norm
#
# The analogue of the RBN paper's Table 2 (claims A7, A8: RBN ≥ BN everywhere, RBN ≥ LN on 17 of 20
# settings) and the evaluation-mode experiment of claim A1: a BN model evaluated with its population
# (running) statistics vs the same model normalising each test batch with its own statistics. If the
# training–inference discrepancy is what hurts BN, batch statistics at inference close much of its gap to LN.
#
# The table below is read from `paper_tables/table2_bn_rbn.csv` (written by `normlab tables`), so the
# numbers here are the table's numbers. Significance comes from `normlab stats` (paired by seed,
# Holm-corrected). With a handful of seeds at laptop scale, "not significant" is the common and honest
# outcome; small models trained briefly sit near the noise floor of TID (see `tid_dynamics`), so a
# BN-vs-LN gap driven by TID is not expected to appear here.

# %% tags=["parameters"]
tidy_dir = "results/tidy"
stats_dir = "results/stats"
tables_dir = "paper_tables"
figures_dir = "figures"

# %%
import pandas as pd
from IPython.display import display

from normlab.analysis import figures as F
from normlab.analysis.notebooks import comparisons_among, open_inputs, show_figure, show_table

tidy_dir, stats_dir, tables_dir, figures_dir, inputs = open_inputs(tidy_dir, stats_dir, tables_dir, figures_dir)

# %% [markdown]
# ## Table 2 analogue (from `normlab tables`)

# %%
table = show_table(tables_dir, "table2_bn_rbn")
if table is not None:
    display(table)

# %% [markdown]
# ## Paired comparisons (from `normlab stats`)
# One row per setting × metric × pair of norms; the difference is oriented so that positive means the
# first norm is better.

# %%
comparisons = comparisons_among(inputs, set(F.BATCH_STAT_NORMS) | {"ln"})
if comparisons is not None:
    display(comparisons)

# %% [markdown]
# ## Population vs batch statistics at evaluation (claim A1)
# Filled circles: eval mode (population statistics); open squares: batch statistics at inference.
# The thin horizontal lines are LN's level. Runs that diverged or are missing are counted in red.

# %%
show_figure(F.eval_mode_gap(inputs))

# %%
pop, split = F.primary_scores(inputs, "population")
batch, _ = F.primary_scores(inputs, "batch_stats")
both = pd.concat([pop, batch[batch["split"] == split]])
if len(both):
    display(both.pivot_table(index=["dataset", "metric", "placement", "norm"], columns="stats", values="value",
                             aggfunc=["mean", "std", "count"]).round(4))
else:
    print("no completed run with scores in this configuration")

# %% [markdown]
# ## Runtime (from `normlab tables`)
# Claim A10 (RBN adds no inference cost over BN) concerns inference; this table gives the training rules'
# wall-clock and memory from the workflow's benchmark files.

# %%
runtime = show_table(tables_dir, "runtime")
if runtime is not None:
    display(runtime)
