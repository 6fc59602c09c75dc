"""A small synthetic set of tidy tables (every table and column of docs/analysis_contract.md §4) with
effects planted where a test wants them.  Used by the stats, tables and claims tests, and importable by
any other analysis test (figures, notebooks):

    from tests.analysis.synthetic_tidy import synthetic_tidy   (or: from synthetic_tidy import ...)
    tables = synthetic_tidy(effects={("rbn", None, None): 1.0}, status={("ds_tr", "post", "bn", 2): "missing"})
    write_tidy(tables, tmp_path / "tidy")

Scores: ``base + unit * (seed_shift[seed] ± effect + noise)``, where ``effect`` is in units and
positive always means *better* (it is subtracted for ppl).  The seed shift is shared by every norm of a
seed, so a paired test sees the planted effect and not the seed-to-seed spread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from normlab.analysis.contract import BASELINE_COLUMNS, BASELINES_TABLE
from normlab.analysis.tidy import TABLES, columns
from normlab.metrics import higher_is_better

# dataset -> (task, primary metric, base value, unit): effects, noise and seed shifts are in units
DATASETS = {"ds_tr": ("translation", "bleu", 30.0, 1.0), "ds_lm": ("lm", "ppl", 50.0, 1.0),
            "ds_cls": ("classification", "accuracy", 0.8, 0.01)}
NORMS = ("ln", "bn", "rbn", "powernorm", "ln_simple", "detachnorm", "adanorm", "none")
BATCH_NORMS = ("bn", "rbn", "powernorm")
MOMENTUM, WARMUP = 0.1, 10  # burn-in 3/0.1 = 30 steps: growth windows [30, 44] and [86, 100]
BASELINE = {"bleu": ("copy_source", 2.0), "ppl": ("unigram", 500.0), "accuracy": ("majority", 0.5)}
SENTENCE_FACTOR = 1.3  # the sentence floor over the token floor
MODULES = ("encoder.layers.0.attn_norm", "encoder.layers.0.ffn_norm", "encoder.layers.1.attn_norm",
           "encoder.layers.1.ffn_norm")


def _effect(effects: dict, dataset: str, placement: str, norm: str) -> float:
    """Sum of the planted effects that match; a key is (norm, dataset or None, placement or None)."""
    return sum(v for (n, d, p), v in effects.items()
               if n == norm and d in (None, dataset) and p in (None, placement))


def synthetic_tidy(
    datasets: dict | None = None,
    placements: tuple[str, ...] = ("post", "pre"),
    norms: tuple[str, ...] = NORMS,
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5),
    effects: dict | None = None,
    noise: float = 0.05,
    status: dict | None = None,
    batch_stats_gain: dict | None = None,
    train_loss_effects: dict | None = None,
    valid_loss_effects: dict | None = None,
    tid_level: dict | None = None,
    first_layer_level: dict | None = None,
    tid_growth: dict | None = None,
    cond_factor: dict | None = None,
    ln_at_chance: tuple[str, ...] = (),
    rbn_tid: float | None = None,
    loss_noise: float = 0.01,
    config_name: str = "test",
    scale: str = "laptop",
    rng_seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Every tidy table for the grid datasets × placements × norms × seeds, and ``baselines``.

    ``status``: {(dataset, placement, norm, seed): "missing" | "diverged"}; ``batch_stats_gain``:
    {norm: improvement (metric units, positive = better) of batch-statistics over population evaluation};
    ``train_loss_effects`` / ``valid_loss_effects``: {norm: added final loss}; ``tid_level``:
    {dataset: BN's batch_vs_population as a multiple of the sentence floor, every layer};
    ``first_layer_level``: {dataset: the same for the first BN layer only (the others then sit at half
    the floor)}; ``tid_growth``: {dataset: late/early ratio of the online TID, windows after burn-in};
    ``cond_factor``: {norm: multiplier of the condition numbers}; ``ln_at_chance``: datasets whose LN
    scores equal the trivial baseline (it did not learn).  RBN's TID is half of BN's excess, or
    ``rbn_tid`` × BN's.  ``loss_noise``: the spread of the logged losses.
    """
    datasets = datasets or DATASETS
    effects, status = effects or {}, status or {}
    batch_stats_gain = batch_stats_gain or {}
    train_loss_effects, valid_loss_effects = train_loss_effects or {}, valid_loss_effects or {}
    tid_level, tid_growth, cond_factor = tid_level or {}, tid_growth or {}, cond_factor or {}
    first_layer_level = first_layer_level or {}
    rng = np.random.default_rng(rng_seed)
    seed_shift = dict(zip(seeds, rng.normal(0, 1.0, len(seeds)), strict=True))
    tokens_per_batch = 400.0
    floor = 1 / np.sqrt(tokens_per_batch)
    rows: dict[str, list[dict]] = {name: [] for name in TABLES}
    baselines = []
    for dataset, (task, metric, base, unit) in datasets.items():
        sign = 1.0 if higher_is_better(metric) else -1.0
        kind, chance = BASELINE[metric]
        baselines.append(dict(dataset=dataset, corpus=dataset, task=task, metric=metric, baseline=kind, value=chance,
                              split="test", n_examples=100, n_targets=1000, selection="{}"))
        for placement in placements:
            for norm in norms:
                for seed in seeds:
                    run_id = f"{dataset}/{placement}/{norm}/seed{seed}"
                    ids = dict(run_id=run_id, config_name=config_name, scale=scale, task=task, dataset=dataset,
                               placement=placement, norm=norm, seed=seed)
                    st = status.get((dataset, placement, norm, seed), "completed")
                    batch = norm in BATCH_NORMS
                    rows["runs"].append(ids | dict(
                        status=st, grids="rbn;ln_family", steps=None if st == "missing" else 100, epochs=2,
                        diverged_at_step=50 if st == "diverged" else None, wall_time_s=60.0,
                        tokens_seen=40000, tokens_per_batch=tokens_per_batch, n_params=10000, device="cpu",
                        primary_metric=metric, higher_is_better=higher_is_better(metric),
                        config_hash="abc123", batch_stats=batch, momentum=MOMENTUM if batch else np.nan,
                        warmup_steps=WARMUP))
                    if st == "missing":
                        continue
                    rows["benchmarks"].append(ids | dict(rule="train", s=60.0 * (1.1 if batch else 1),
                                                         max_rss_mb=500.0, cpu_time_s=110.0))
                    # curves (diverged runs keep theirs, the last loss is NaN)
                    last = 50 if st == "diverged" else 100
                    for step in range(10, last + 1, 10):
                        loss = (3.0 * np.exp(-step / 50) + 1.0 + train_loss_effects.get(norm, 0.0) * step / 100
                                + rng.normal(0, loss_noise))
                        if st == "diverged" and step == last:
                            loss = np.nan
                        rows["curves"].append(ids | dict(step=step, kind="train", metric="loss", value=loss))
                    if st == "completed":
                        vloss = 1.5 + valid_loss_effects.get(norm, 0.0) + rng.normal(0, loss_noise)
                        rows["curves"].append(ids | dict(step=100, kind="valid", metric="loss", value=vloss))
                    # per layer: batch_vs_population as a multiple of the sentence floor
                    level = tid_level.get(dataset, 1.5)
                    levels = [level] * len(MODULES)
                    if dataset in first_layer_level:
                        levels = [first_layer_level[dataset]] + [0.5] * (len(MODULES) - 1)
                    if norm == "rbn":
                        levels = [lv * rbn_tid if rbn_tid is not None else lv * 0.5 + 0.5 for lv in levels]
                    # online TID: flat until step 50, then up to `growth` x by step 80 (after burn-in and warm-up)
                    if batch:
                        g = tid_growth.get(dataset, 1.0)
                        for step in range(10, last + 1, 10):
                            factor = g ** float(np.clip((step - 50) / 30, 0, 1))
                            for module, lv in zip(MODULES, levels, strict=True):
                                layer, position = int(module.split(".")[2]), module.split(".")[-1]
                                rows["tid"].append(ids | dict(
                                    method="online", step=step, module=module, layer=layer, position=position,
                                    kind="mean_tid", value=floor * SENTENCE_FACTOR * lv * factor
                                    * rng.uniform(0.97, 1.03), std=np.nan, n_batches=np.nan))
                    if st != "completed":
                        continue
                    for module, lv in zip(MODULES, levels, strict=True):
                        layer, position = int(module.split(".")[2]), module.split(".")[-1]
                        where = dict(module=module, layer=layer, position=position)
                        fs = floor * SENTENCE_FACTOR
                        if batch:
                            bvp = fs * lv
                            lag = 0.1 * bvp
                            parts = dict(observed=float(np.hypot(bvp, lag)), batch_vs_population=bvp, floor_token=floor,
                                         floor_sentence=fs, floor_theory=floor, lag=lag)
                            method, momentum = "batch_stats", MOMENTUM
                        else:
                            parts = dict(floor_token=floor, floor_sentence=fs, floor_theory=floor,
                                         batch_vs_population=fs * 2)
                            method, momentum = "shadow", np.nan
                        for component, value in parts.items():
                            rows["tid_decomposition"].append(ids | where | dict(
                                kind="mean_tid", component=component, value=value * rng.uniform(0.98, 1.02),
                                std=value * 0.1, n_batches=8, tokens_per_batch=tokens_per_batch, method=method,
                                probe_mode="train", momentum=momentum))
                        factor = cond_factor.get(norm, 1.0)
                        for measure, value in (("c50", 20.0), ("c80", 80.0), ("cmax", 5.0)):
                            rows["conditioning"].append(ids | where | dict(
                                measure=measure, value=value * factor * rng.uniform(0.9, 1.1), dim=16, n_tokens=800,
                                site="output", centred=True))
                    # scores
                    effect = _effect(effects, dataset, placement, norm)
                    pop = base + unit * (seed_shift[seed] + sign * effect + rng.normal(0, noise))
                    if dataset in ln_at_chance and norm == "ln":
                        pop = chance + unit * rng.normal(0, noise)
                    stat_values = {"population": pop}
                    if batch:
                        gain = sign * batch_stats_gain.get(norm, 0.0) + rng.normal(0, noise)
                        stat_values["batch_stats"] = pop + unit * gain
                    for stats_name, value in stat_values.items():
                        for split in ("valid", "test"):
                            rows["scores"].append(ids | dict(split=split, stats=stats_name, metric=metric, value=value,
                                                             primary=True, higher_is_better=higher_is_better(metric)))
                            rows["scores"].append(ids | dict(
                                split=split, stats=stats_name, metric="loss",
                                value=1.5 + valid_loss_effects.get(norm, 0) + rng.normal(0, loss_noise), primary=False,
                                higher_is_better=False))
    out = {name: pd.DataFrame(rows[name], columns=columns(name)) for name in TABLES}
    out[BASELINES_TABLE] = pd.DataFrame(baselines, columns=BASELINE_COLUMNS)
    return out
