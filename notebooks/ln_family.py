# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The LayerNorm family: LN, LN-simple, DetachNorm, AdaNorm, w/o Norm
#
# Xu et al. (2019) claim that LN's gain and bias do not help in most cases (B1: LN-simple ≥ LN), that
# the gradients through the mean and variance matter more than the forward normalisation (B2:
# DetachNorm < LN-simple), that gain and bias raise over-fitting (B4: LN has lower training loss but
# higher validation loss than LN-simple / AdaNorm), and that AdaNorm beats LN on most datasets (B5).
#
# The tables are `paper_tables/ln_family.csv` (the analogues of the paper's Tables A–C, written by
# `normlab tables`); the comparisons are `normlab stats`'s, paired by seed. The curves show B4.
#
# Small scale: the paper's differences are often a few tenths of a BLEU point, within seed noise even
# at full scale; with short training, over-fitting (B4) may not have set in at all, so a flat
# train/valid picture is expected rather than informative.

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
# ## Tables A–C analogue (from `normlab tables`)

# %%
table = show_table(tables_dir, "ln_family")
if table is not None:
    display(table)

# %% [markdown]
# ## Paired comparisons within the LN family (from `normlab stats`)

# %%
comparisons = comparisons_among(inputs, F.LN_FAMILY)
if comparisons is not None:
    display(comparisons)

# %% [markdown]
# ## Training and validation loss (claim B4)
# Mean over seeds with a ± 1 sd band; solid = training loss (mean over the logging window, including
# dropout), dashed = validation loss. Diverged runs end in a red ×.

# %%
show_figure(F.training_curves(inputs))

# %% [markdown]
# The last logged training and validation loss of each run, mean ± sd over seeds: B4 expects LN's
# training loss below and its validation loss above LN-simple's and AdaNorm's.

# %%
curves = inputs.curves
curves = curves[(curves["metric"] == "loss") & curves["norm"].isin(F.LN_FAMILY)].dropna(subset=["value"])
if len(curves):
    last = curves[curves["step"] == curves.groupby(["run_id", "kind"])["step"].transform("max")]
    display(last.pivot_table(index=["dataset", "placement", "norm"], columns="kind", values="value",
                             aggfunc=["mean", "std", "count"]).round(4))
else:
    print("no LN-family loss curves in this configuration")
