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
# (running) statistics vs the same model normalising each test batch with its own statistics.
#
# The table is read from `paper_tables/table2_bn_rbn.csv` (written by `normlab tables`), so the
# numbers here are the table's numbers. "≥" is a non-inferiority test at the margin the config
# declared before the runs; a tie at a handful of seeds is inconclusive, never support; every
# comparison carries its interval and the smallest effect it could have detected (`mde_rel`). A
# setting whose LN does not beat a trivial baseline by the declared margin is not testable (§).

# %% tags=["parameters"]
tidy_dir = "results/tidy"
stats_dir = "results/stats"
tables_dir = "paper_tables"
figures_dir = "figures"

# %%
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
# ## The learning bars: which settings are testable

# %%
display(inputs.learning_bars)

# %% [markdown]
# ## Paired comparisons (from `normlab stats`)
# Oriented so that positive means the first norm is better; relative effect and its 95 % interval,
# the one-sided Holm-adjusted tests and the minimum detectable effect.

# %%
batch_norms = set(inputs.runs.loc[inputs.runs["batch_stats"].astype(bool), "norm"]) if len(inputs.runs) else set()
comparisons = comparisons_among(inputs, batch_norms | {"ln"})
if comparisons is not None:
    display(comparisons[["comparison", "measure", "dataset", "placement", "metric", "testable", "n_pairs",
                         "diff_mean", "rel_effect", "rel_ci_low", "rel_ci_high", "p_holm_better", "p_holm_worse",
                         "p_holm_noninferior", "mde_rel", "note"]])

# %% [markdown]
# ## Population vs batch statistics at evaluation (claim A1)

# %%
show_figure(F.eval_mode_gap(inputs))

# %%
s = inputs.summary
display(s[(s["measure"] == "primary") & s["norm"].isin(batch_norms | {"ln"})]
        .pivot_table(index=["dataset", "metric", "placement", "norm"], columns="stats", values=["mean", "std", "n"]))

# %% [markdown]
# ## Runtime (from `normlab tables`)

# %%
runtime = show_table(tables_dir, "runtime")
if runtime is not None:
    display(runtime)
