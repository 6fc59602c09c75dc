# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Layer-wise conditioning: LN vs BN vs RBN (claim A9)
#
# For each position where the BN-family models normalise with batch statistics (and the LN model at
# the same positions), the probe takes the covariance of what the following linear layers see, and
# reports from its eigenvalues λ₁ ≥ … ≥ λ_C: C50% = λ₁/λ_{C/2}, C80% = λ₁/λ_{0.8C} and Cmax = λ₁
# (Huang et al. 2020, as the RBN paper uses them). Smaller is better conditioned. The claim: RBN
# gives smaller values than LN. The three measures count as one setting in the verdict.
# Tables written by an older probe hold the uncentred second moment of the norm's input instead:
# the figure and table say so.
#
# Small scale: d_model is small, so C80% rests on few eigenvalues; the seeds' spread is shown.

# %% tags=["parameters"]
tidy_dir = "results/tidy"
stats_dir = "results/stats"
tables_dir = "paper_tables"
figures_dir = "figures"

# %%
from IPython.display import display

from normlab.analysis import figures as F
from normlab.analysis.notebooks import open_inputs, show_figure, show_table

tidy_dir, stats_dir, tables_dir, figures_dir, inputs = open_inputs(tidy_dir, stats_dir, tables_dir, figures_dir)

# %% [markdown]
# ## The conditioning table (from `normlab tables`)

# %%
table = show_table(tables_dir, "conditioning")
if table is not None:
    display(table)

# %% [markdown]
# ## Per layer, at the BN positions

# %%
show_figure(F.conditioning(inputs))

# %% [markdown]
# The comparisons claim A9 uses: mean log10 over the positions per run, paired by seed.

# %%
c = inputs.comparisons
if len(c):
    display(c[c["measure"].str.startswith("log10_", na=False)][
        ["comparison", "measure", "dataset", "placement", "testable", "n_pairs", "rel_effect", "rel_ci_low",
         "rel_ci_high", "p_holm_better", "p_holm_worse", "mde_rel"]])
else:
    print("comparisons.csv is absent or empty: run `normlab stats`")
