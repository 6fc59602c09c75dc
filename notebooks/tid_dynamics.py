# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # TID dynamics: does batch normalisation's training–inference discrepancy grow, and does it matter?
#
# The training–inference discrepancy (TID) of a BN layer compares the statistics of a training batch
# (μ_B, σ_B) with the running (population) statistics used at inference (μ̂, σ̂):
# mean TID = ‖μ_B − μ̂‖ / ‖σ̂‖, variance TID = ‖σ_B − σ̂‖ / ‖σ̂‖ (Wang, Wu & Huang 2022).
# The paper's claims: TID stays small for images and language modelling (A2), "explodes" in NMT,
# tagging and classification (A3), indicates BN's deficit to LN across datasets (A4), and RBN lowers it (A6).
#
# **A TID means nothing alone.** A batch of N i.i.d. tokens has a mean TID of about 1/√N from sampling
# alone, and the tokens of one sentence are not independent: the probe therefore measures two floors
# at the final weights, i.i.d. tokens (a lower bound) and random whole sentences at the run's token
# budget, and compares the real batches with the true population statistics (batch_vs_population)
# beside the running statistics' lag. The parts are norms of independent errors: they add in
# quadrature, never as bars on top of each other. **Per layer:** the first BN layer behaves unlike
# the deeper ones, and a mean over layers hides it, so every summary is shown (first layer, maximum,
# mean) and the claims use the one declared before the runs.
#
# This notebook reads only the statistics (`normlab stats`) and the tidy runs; every figure is drawn
# by `normlab.analysis.figures`, the same functions `normlab figures` saves.

# %% tags=["parameters"]
tidy_dir = "results/tidy"
stats_dir = "results/stats"
tables_dir = "paper_tables"
figures_dir = "figures"

# %%
from IPython.display import display

from normlab.analysis import figures as F
from normlab.analysis.notebooks import open_inputs, show_figure

tidy_dir, stats_dir, tables_dir, figures_dir, inputs = open_inputs(tidy_dir, stats_dir, tables_dir, figures_dir)
print("the claims' TID summary (declared):", inputs.declared)

# %% [markdown]
# ## The runs behind this notebook
# Every cell of the grid with its status; diverged and missing runs are counted, never dropped.

# %%
runs = inputs.runs
if len(runs):
    display(runs.pivot_table(index=["task", "dataset", "placement"], columns=["norm", "status"],
                             values="run_id", aggfunc="count", fill_value=0))
else:
    print("runs.csv is absent or empty: no runs in this configuration")

# %% [markdown]
# ## TID over training (claims A2, A3)
# First BN layer, maximum and mean over layers; the dotted line is the end of the running statistics'
# burn-in and of the warm-up, the shaded bands the declared growth windows.

# %%
show_figure(F.tid_curves(inputs))

# %% [markdown]
# ## At the end of training, per run: TID against its floors (stats `tid_summary`)
# `ratio_ref` = batch_vs_population / the reference floor (the sentence floor where measured), per
# layer and then summarised; `excess_sentence` = √(max(b² − f², 0)); `lag_ratio` = lag over the running
# average's own noise; `growth` = late / early online TID between the declared windows.

# %%
tsum = inputs.tid_summary
if len(tsum):
    cols = ["observed", "batch_vs_population", "floor_token", "floor_sentence", "ratio_ref", "excess_sentence",
            "lag_ratio", "growth"]
    display(tsum[tsum["kind"] == "mean_tid"].set_index(["dataset", "placement", "norm", "seed", "summary"])[cols]
            .sort_index().round(4))
else:
    print("tid_summary.csv has no rows: no TID in this configuration")

# %% [markdown]
# ## The decomposition per BN layer

# %%
show_figure(F.tid_decomposition(inputs))

# %% [markdown]
# ## BN vs RBN (claim A6)

# %%
show_figure(F.tid_bn_vs_rbn(inputs))

# %% [markdown]
# ## Does TID indicate BN's deficit? (claim A4)
# The same TID and sign as the correlation in `correlations.csv`: BN − LN, relative, + = BN better,
# over the testable settings only (a setting whose LN did not learn is excluded and listed).

# %%
show_figure(F.tid_vs_gap(inputs))

# %%
display(inputs.tid_gap.round(4))
display(inputs.correlations)
