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
# **The noise floor.** A batch of N i.i.d. tokens has a mean TID of about 1/√N from sampling alone, so
# a raw TID says nothing until it is set beside that floor. At laptop scale (hundreds to a few thousand
# tokens per batch, short training, shallow models) a measured probe found every TID at the floor.
# The probe therefore splits TID into the i.i.d. **floor**, the excess from **batch structure**
# (correlated tokens of a sentence, length bucketing) and the **lag** of the running statistics behind
# the population of the current weights. An "explosion" is growth of structure or lag, never of the floor.
#
# What small scale **can** show: whether TID rises above its floor at all, how the excess ranks
# across datasets, and whether RBN lowers it. What it **cannot** show: the paper's regime (6-layer
# d = 512 models, tens of thousands of updates), where the excess may grow far beyond what is seen here.
# A null result at this scale is not evidence against the paper at its scale.
#
# This notebook reads only the tidy tables and the statistics; every figure is drawn by
# `normlab.analysis.figures`, the same functions `normlab figures` saves to the figures folder.

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
print("saved figures (normlab figures):", figures_dir)

# %% [markdown]
# ## The runs behind this notebook
# Every cell of the grid with its status; diverged and missing runs are counted, never dropped.

# %%
runs = inputs.runs
if len(runs):
    display(runs.pivot_table(index=["task", "dataset", "placement"], columns=["norm", "status"],
                             values="run_id", aggfunc="count", fill_value=0))
    print("configuration:", ", ".join(sorted(runs["config_name"].astype(str).unique())),
          "| scale:", ", ".join(sorted(runs["scale"].astype(str).unique())))
else:
    print("runs.csv is absent or empty: no runs in this configuration")

# %% [markdown]
# ## TID over training, per layer, CV vs NLP (claims A2, A3)
# One line per BN module, coloured by depth; the horizontal lines are the sampling floor of that
# dataset's batches (measured by the probe when available, else 1/√tokens per batch).
# A curve that rises away from its floor is the paper's "explosion"; a curve on its floor is noise.

# %%
show_figure(F.tid_curves(inputs))

# %% [markdown]
# Late-training TID (last quarter of the logged steps, mean over BN modules, then mean ± sd over
# seeds) in units of its floor. 1 means "at the floor"; these are the x values of `tid_vs_gap` below.

# %%
late = F.late_tid_table(inputs)
if len(late):
    display(late.round(4))
else:
    print("no completed BN run with online TID in this configuration")

# %% [markdown]
# ## The decomposition: floor, batch structure, lag
# From the offline probe at the end of training (frozen weights). LN-family rows (marked *) are
# "shadow" statistics: what BN would see at the input of that norm; they have no lag.

# %%
show_figure(F.tid_decomposition(inputs))

# %%
dec = inputs.tid_decomposition
if len(dec):
    per_run = dec.groupby(F.ID_COLUMNS + ["kind", "component"], as_index=False)["value"].mean()
    display(per_run.pivot_table(index=["dataset", "placement", "norm", "kind"], columns="component",
                                values="value", aggfunc="mean").round(4))
else:
    print("tid_decomposition.csv has no rows: no probed run in this configuration")

# %% [markdown]
# ## BN vs RBN (claim A6)

# %%
show_figure(F.tid_bn_vs_rbn(inputs))

# %% [markdown]
# ## Does TID indicate BN's deficit? (claim A4)
# Left: raw late-training TID against BN − LN on the primary test metric (in % of LN, + = BN better),
# with the Spearman correlation computed by `normlab stats` (`correlations.csv`). Right: the same TID
# in units of its floor — at small scale the raw TID mostly tracks the batch size, not the task.

# %%
show_figure(F.tid_vs_gap(inputs))

# %%
display(F.tid_gap_points(inputs).round(4))
if inputs.correlations is not None:
    display(inputs.correlations)
else:
    print(f"{stats_dir}/correlations.csv is absent: run `normlab stats` for the rank correlation")
