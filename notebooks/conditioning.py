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
# For each norm module, the probe takes the covariance of that norm's input features over a set of
# training batches and reports, from its eigenvalues λ₁ ≥ … ≥ λ_C: C50% = λ₁/λ_{C/2}, C80% = λ₁/λ_{0.8C}
# and Cmax = λ₁ (Huang et al. 2020, as the RBN paper uses them). Smaller is better conditioned.
# The claim: RBN gives smaller values than LN.
#
# The table is `paper_tables/conditioning.csv` (written by `normlab tables`); the figure is drawn from
# the tidy `conditioning.csv` by `normlab.analysis.figures.conditioning`.
#
# Small scale: d_model is small (tens to a few hundred features), so C80% rests on few eigenvalues and
# is noisy, and a covariance estimated from a few thousand tokens has its own sampling spread; the
# seeds' spread is shown for that reason. Differences within that spread are not evidence either way.

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
# ## Per layer

# %%
show_figure(F.conditioning(inputs))

# %% [markdown]
# Mean over norm modules per run, then mean ± sd over seeds, from the tidy table (every norm, not
# only LN/BN/RBN). Runs that diverged have no probe and are not in these rows; `runs.csv` counts them.

# %%
cond = inputs.conditioning
if len(cond):
    per_run = cond.groupby(F.ID_COLUMNS + ["measure"], as_index=False)["value"].mean()
    display(per_run.pivot_table(index=["dataset", "placement", "norm"], columns="measure", values="value",
                                aggfunc=["mean", "std", "count"]).round(3))
else:
    print("conditioning.csv has no rows: no probed run in this configuration")
