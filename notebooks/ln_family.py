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
# Xu et al. (2019) claim that LN's gain and bias do not help in most cases (B1: LN-simple ≥ LN, a
# non-inferiority test at the declared margin), that the gradients through the mean and variance
# matter more than the forward normalisation (B2: DetachNorm < LN-simple), that gain and bias raise
# over-fitting (B4: LN has lower training loss but higher validation loss than LN-simple / AdaNorm),
# and that AdaNorm beats LN on most datasets (B5).
#
# Small scale: the paper's differences are often a few tenths of a BLEU point; with short training,
# over-fitting (B4) may not have set in at all.

# %% tags=["parameters"]
tidy_dir = "results/tidy"
stats_dir = "results/stats"
tables_dir = "paper_tables"
figures_dir = "figures"

# %%
from IPython.display import display

from normlab.analysis import figures as F
from normlab.analysis.notebooks import comparisons_among, open_inputs, show_figure, show_table

LN_FAMILY = ("ln", "ln_simple", "detachnorm", "adanorm", "none")
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
comparisons = comparisons_among(inputs, LN_FAMILY)
if comparisons is not None:
    display(comparisons[["comparison", "measure", "dataset", "placement", "testable", "n_pairs", "rel_effect",
                         "rel_ci_low", "rel_ci_high", "p_holm_better", "p_holm_worse", "p_holm_noninferior",
                         "mde_rel"]])

# %% [markdown]
# ## Training and validation loss (claim B4)

# %%
show_figure(F.training_curves(inputs))

# %% [markdown]
# The last logged training and validation loss, mean ± sd over seeds (stats `curves_summary`).

# %%
curves = inputs.curves_summary
curves = curves[curves["norm"].isin(LN_FAMILY) & (curves["group"] == "seeds")]
if len(curves):
    last = curves[curves["step"] == curves.groupby(["dataset", "placement", "norm", "kind"])["step"].transform("max")]
    display(last.pivot_table(index=["dataset", "placement", "norm"], columns="kind", values=["mean", "sd", "n"]))
else:
    print("no LN-family loss curves in this configuration")
