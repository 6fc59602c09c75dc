"""A synthetic tidy-table set (docs/analysis_contract.md §4) with planted effects, for the figure and
notebook tests and for looking at the figures.

Planted, so that a figure that mixes up a column shows it:

* BN's online TID stays at the sampling floor 1/√tokens on image and LM data and grows over
  training on the other NLP tasks (deeper layers grow faster); RBN's TID is 0.6× BN's;
* the probe decomposition: floor ≈ 1/√tokens, structure large on the growing tasks, lag small;
* BN beats LN where TID is small and loses where it grows, in proportion to the late TID; evaluating
  BN with batch statistics closes most of that gap (claim A1);
* LN reaches a lower training loss and a higher validation loss than LN-simple and AdaNorm (B4);
* RBN's condition numbers are lower than LN's, BN's in between (A9);
* one diverged run (BN, the translation set, Post-Norm, seed 1) and one missing run (RBN, the
  tagging set, Pre-Norm, seed 2).

:func:`write_stats` runs ``normlab stats`` on them: the figures draw the statistics tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# dataset -> (task, primary metric, higher is better, tokens per batch, LN's score, TID growth rate)
DATASETS = {
    "fashion_mnist": ("image", "accuracy", True, 2176, 0.86, 0.0),
    "brown_lm": ("lm", "ppl", False, 650, 180.0, 0.0),
    "bible_es_en": ("translation", "bleu", True, 1200, 18.0, 2.2),
    "brown_pos": ("tagging", "accuracy", True, 650, 0.93, 1.2),
    "wnut16": ("tagging", "f1", True, 400, 0.30, 1.6),
    "rt_polarity": ("classification", "accuracy", True, 900, 0.72, 0.8),
    "spamassassin": ("classification", "accuracy", True, 900, 0.95, 0.5),
}
LN_FAMILY = ["ln", "ln_simple", "adanorm", "detachnorm"]
BN_FAMILY = ["bn", "rbn", "powernorm"]
BATCH_STAT = {"bn", "rbn", "powernorm", "pn_vanilla"}
DIVERGED = ("bible_es_en", "post", "bn", 1)
MISSING = ("brown_pos", "pre", "rbn", 2)
DIVERGED_AT = 600


def modules(task: str, placement: str) -> list[str]:
    stack = "decoder" if task == "lm" else "encoder"
    names = [f"{stack}.layers.{i}.{p}" for i in range(2) for p in ("attn_norm", "ffn_norm")]
    return names + ([f"{stack}.final_norm"] if placement == "pre" else [])


def _id(dataset, placement, norm, seed, config_name, scale):
    task = DATASETS[dataset][0]
    return dict(run_id=f"{dataset}/{placement}/{norm}/seed{seed}", config_name=config_name, scale=scale,
                task=task, dataset=dataset, placement=placement, norm=norm, seed=seed)


def _layer_position(module: str) -> tuple[float, str]:
    parts = module.split(".")
    digits = [int(p) for p in parts if p.isdigit()]
    return (float(digits[0]) if digits else np.nan), parts[-1]


def build_tables(
    datasets: list[str] | None = None,
    placements: tuple[str, ...] = ("post", "pre"),
    norms: list[str] | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    steps: int = 1500,
    every: int = 100,
    config_name: str = "test",
    scale: str = "laptop",
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Every tidy table of the contract as a DataFrame (the file name without `.csv` -> frame)."""
    rng = np.random.default_rng(seed)
    datasets = datasets or list(DATASETS)
    norms = norms or LN_FAMILY + BN_FAMILY
    names = ("runs", "scores", "curves", "tid", "tid_decomposition", "conditioning", "benchmarks")
    out: dict[str, list[dict]] = {k: [] for k in names}
    log_steps = np.arange(every, steps + 1, every)
    for dataset in datasets:
        task, metric, hib, tokens, ln_score, growth = DATASETS[dataset]
        floor = 1 / np.sqrt(tokens)
        for placement in placements:
            for norm in norms:
                for s in seeds:
                    ids = _id(dataset, placement, norm, s, config_name, scale)
                    cell = (dataset, placement, norm, s)
                    status = "missing" if cell == MISSING else "diverged" if cell == DIVERGED else "completed"
                    done = steps if status == "completed" else DIVERGED_AT if status == "diverged" else 0
                    out["runs"].append(ids | dict(
                        status=status, grids="rbn;ln_family", steps=done if status != "missing" else np.nan,
                        epochs=done / 500 if status != "missing" else np.nan,
                        diverged_at_step=DIVERGED_AT if status == "diverged" else np.nan,
                        wall_time_s=done * 0.07 if status != "missing" else np.nan,
                        tokens_seen=done * tokens if status != "missing" else np.nan,
                        tokens_per_batch=tokens if status != "missing" else np.nan,
                        n_params=120_000, device="cpu", primary_metric=metric, higher_is_better=hib,
                        config_hash="abc123" if status != "missing" else "", batch_stats=norm in BATCH_STAT,
                        momentum=0.05 if norm in BATCH_STAT else np.nan, warmup_steps=100))
                    if status == "missing":
                        continue
                    out["benchmarks"].append(ids | dict(rule="train", s=done * 0.07, max_rss_mb=800.0,
                                                        cpu_time_s=done * 0.07))
                    steps_here = log_steps[log_steps <= done]
                    frac = steps_here / steps
                    mods = modules(task, placement)
                    # --- TID over training (batch-statistics norms only, as the engine logs it)
                    late_tid = floor
                    if norm in BATCH_STAT:
                        shrink = 0.6 if norm == "rbn" else 1.0
                        for depth, module in enumerate(mods):
                            layer, position = _layer_position(module)
                            grow = np.exp(growth * (1 + 0.3 * depth) * frac) if growth else np.ones_like(frac)
                            noise = rng.lognormal(0, 0.08, size=(2, len(frac)))
                            mean_tid = floor * (1 + 3 * (1 - frac) ** 4) * grow * shrink * noise[0]
                            var_tid = 0.7 * floor * grow ** 0.7 * noise[1]
                            if status == "diverged":
                                mean_tid[-1] *= 40  # the blow-up right before the loss went non-finite
                            late_tid = max(late_tid, float(mean_tid[-1]))
                            for kind, values in (("mean_tid", mean_tid), ("var_tid", var_tid),
                                                 ("mean_tid_channel", mean_tid * 0.8)):
                                out["tid"] += [ids | dict(method="online", step=int(st), module=module, layer=layer,
                                                          position=position, kind=kind, value=float(v),
                                                          std=np.nan, n_batches=1)
                                               for st, v in zip(steps_here, values, strict=True)]
                    # --- the probe's decomposition (empty for a diverged run)
                    if status == "completed" and norm != "detachnorm":
                        method = "batch_stats" if norm in BATCH_STAT else "shadow"
                        shrink = 0.6 if norm == "rbn" else 1.0
                        for depth, module in enumerate(mods):
                            layer, position = _layer_position(module)
                            for kind in ("mean_tid", "var_tid"):
                                f = floor * (1 if kind == "mean_tid" else 0.7) * rng.lognormal(0, 0.03)
                                fs = 1.25 * f  # the sentence floor: tokens of a sentence are not independent
                                excess = fs * (np.exp(growth * (1 + 0.3 * depth)) - 1) * shrink * rng.lognormal(0, .1)
                                lag = 0.2 * f * (1 + growth) * shrink * rng.lognormal(0, 0.1)
                                bvp = float(np.hypot(fs, excess))  # independent errors add in quadrature
                                comps = {"floor_token": f, "floor_sentence": fs, "batch_vs_population": bvp}
                                if method == "batch_stats":
                                    comps |= {"lag": lag, "observed": float(np.hypot(bvp, lag))}
                                if kind == "mean_tid":
                                    comps["floor_theory"] = floor
                                out["tid_decomposition"] += [
                                    ids | dict(module=module, layer=layer, position=position, kind=kind, component=c,
                                               value=float(v), std=0.05 * float(v), n_batches=16,
                                               tokens_per_batch=tokens, method=method, probe_mode="train",
                                               momentum=0.05 if method == "batch_stats" else np.nan)
                                    for c, v in comps.items()]
                    # --- curves: train and valid loss; LN over-fits (B4), BN slower on growing tasks
                    base = {"image": 0.4, "lm": 5.0}.get(task, 1.0)
                    offset = {"ln": (-0.06, 0.08), "ln_simple": (0.0, 0.0), "adanorm": (0.02, -0.02),
                              "detachnorm": (0.10, 0.12), "bn": (0.0, 0.04 * growth), "rbn": (0.03, 0.02 * growth),
                              "powernorm": (0.01, 0.03 * growth)}.get(norm, (0, 0))
                    train = base * (1 + 2 * np.exp(-4 * frac)) + offset[0] + rng.normal(0, 0.02, len(frac))
                    valid = base * (1.05 + 2 * np.exp(-4 * frac)) + offset[1] + 0.05 * frac * (norm == "ln")
                    if status == "diverged":
                        train[-1] = np.nan  # the engine writes a non-finite loss as null
                    for kind, values in (("train", train), ("valid", valid)):
                        out["curves"] += [ids | dict(step=int(st), kind=kind, metric="loss", value=float(v))
                                          for st, v in zip(steps_here, values, strict=True)]
                    # --- conditioning
                    if status == "completed":
                        factor = {"rbn": 0.5, "bn": 0.8}.get(norm, 1.0)
                        for depth, module in enumerate(mods):
                            layer, position = _layer_position(module)
                            for measure, v in (("c50", 8.0), ("c80", 40.0), ("cmax", 30.0)):
                                out["conditioning"].append(ids | dict(
                                    module=module, layer=layer, position=position, measure=measure,
                                    value=float(v * factor * (1 + 0.5 * depth) * rng.lognormal(0, 0.1)),
                                    dim=128, n_tokens=8 * tokens, site="output", centred=True))
                    # --- scores: BN vs LN gap follows TID; batch statistics close most of it
                    if status == "completed":
                        sign = 1 if hib else -1
                        scale_ = abs(ln_score) * 0.05
                        excess = np.log(late_tid / floor)  # 0 at the floor
                        effect = {"ln": 0.0, "ln_simple": 0.002, "adanorm": 0.004, "detachnorm": -0.01,
                                  "bn": 0.01 - 0.03 * excess, "rbn": 0.01 - 0.015 * excess,
                                  "powernorm": 0.0}[norm] * abs(ln_score)
                        pop = ln_score + sign * effect + rng.normal(0, scale_ * 0.05)
                        for split in ("valid", "test"):
                            rows = [("population", pop)]
                            if norm in BATCH_STAT:
                                rows.append(("batch_stats", pop + sign * 0.7 * max(-effect, 0)
                                             + rng.normal(0, scale_ * 0.03)))
                            for stats, v in rows:
                                out["scores"].append(ids | dict(split=split, stats=stats, metric=metric, value=float(v),
                                                                primary=True, higher_is_better=hib))
                                out["scores"].append(ids | dict(split=split, stats=stats, metric="loss",
                                                                value=float(valid[-1]), primary=False,
                                                                higher_is_better=False))
    return {name: pd.DataFrame(rows) for name, rows in out.items()}


def write_tidy(root: Path, tables: dict[str, pd.DataFrame] | None = None, drop: tuple[str, ...] = (),
               **kwargs) -> Path:
    """Write the tables as `root/NAME.csv`; the names in `drop` are left out (an absent table)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tables = tables if tables is not None else build_tables(**kwargs)
    for name, frame in tables.items():
        if name not in drop:
            frame.to_csv(root / f"{name}.csv", index=False)
    return root


def write_stats(tidy_root: Path, stats_dir: Path, baselines: dict | None = None) -> Path:
    """``normlab stats`` on the tables of ``tidy_root`` (with a baselines table: every LN passes its bar)."""
    from normlab.analysis.stats import main_stats

    rows = [dict(dataset=d, corpus=d, task=t[0], metric=t[1], value=(baselines or {}).get(d, _CHANCE[t[1]]),
                 baseline={"bleu": "copy_source", "ppl": "unigram", "accuracy": "majority", "f1": "all_o"}[t[1]],
                 split="test", n_examples=100, n_targets=1000, selection="{}") for d, t in DATASETS.items()]
    pd.DataFrame(rows).to_csv(Path(tidy_root) / "baselines.csv", index=False)
    main_stats(tidy_root, stats_dir)
    return Path(stats_dir)


_CHANCE = {"bleu": 0.5, "ppl": 1000.0, "accuracy": 0.1, "f1": 0.0}
