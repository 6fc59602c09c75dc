"""Estimate the GPU-hours of the paper configuration (config/paper.yaml) on one modern GPU.

No GPU was available to the sessions that wrote this project, so this is an *estimate* from counted
work, not a measurement: for every cell of the paper grid it counts the training FLOPs from the
resolved run config (6 x matmul weights x tokens, plus attention), and turns them into hours under
two stated assumptions for an H100-class GPU in bf16:

    optimistic   40 % of the 989 TFLOP/s dense bf16 peak, and a floor of 15 ms per step
    pessimistic  15 % of that peak,                        and a floor of 60 ms per step

The floor is the per-step overhead of eager PyTorch (kernel launches, optimizer, logging) that
dominates the small models (IMDB's 1-layer d=32 classifier, CoNLL's batches of 16 sentences).
Evaluation (beam search on test) and the probe add roughly 5-10 % and are not counted.  Replace these
numbers with a measured run as soon as a GPU is at hand: `normlab train --config` one cell and read
tokens_per_s from its metrics.jsonl.

    python benchmarks/paper_gpu_hours.py [--config config/paper.yaml]     (prints a Markdown table)
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from normlab import workflow
from normlab.data.registry import DATASETS

PEAK_BF16_TFLOPS = 989.0
SCENARIOS = {"optimistic": (0.40, 0.015), "pessimistic": (0.15, 0.060)}
# vocabularies the registry leaves to the corpus ("full vocabulary"): the published sizes
FULL_VOCAB = {"ptb": 10_000, "wikitext103": 267_735}
# mean tokens per example where a batch is capped by sentence count, not tokens [assumed, typical
# published corpus statistics]; image tokens are exact (patches + CLS)
MEAN_TOKENS = {"conll2003": 14, "resume": 32, "imdb": 270, "yelp_polarity": 160, "dbpedia": 60}


def vocab_size(name: str) -> int:
    opts = DATASETS[name].options
    return opts.get("bpe_vocab_size") or opts.get("vocab_size") or FULL_VOCAB.get(name, 0)


def tokens_per_step(name: str, run: dict) -> float:
    train, family = run["train"], DATASETS[name].family
    if family == "image":
        side = 32 if name == "cifar10" else 28
        return train["batch_size"] * ((side // run["model"]["patch_size"]) ** 2 + 1)
    if train.get("max_sentences"):
        return min(train["max_tokens"], train["max_sentences"] * MEAN_TOKENS[name])
    return train["max_tokens"]


def flops_per_step(name: str, run: dict) -> float:
    """Training FLOPs of one step: 3 x forward, forward = 2 x weights x tokens + attention."""
    m, family = run["model"], DATASETS[name].family
    d, f, n_enc = m["d_model"], m["d_ff"], m["n_layers"]
    tokens = tokens_per_step(name, run)
    seq = 64 if family == "image" else 30  # typical sequence length for the attention term [assumed]
    layer = 4 * d * d + 2 * d * f
    fwd = 2 * n_enc * layer * tokens + 4 * n_enc * seq * d * tokens
    if family == "translation":  # decoder: self + cross attention + FFN, and the tied output projection
        n_dec = m.get("n_decoder_layers") or n_enc
        fwd += 2 * n_dec * (layer + 4 * d * d) * tokens + 8 * n_dec * seq * d * tokens
        fwd += 2 * d * vocab_size(name) * tokens
    elif family == "lm":
        fwd += 2 * d * vocab_size(name) * tokens
    return 3 * fwd


def estimate(config: Path) -> tuple[list[dict], dict]:
    cfg, cells, runs = workflow.load_file(config, Path("workflows/schemas/config.schema.yaml"))
    per_dataset: dict[str, dict] = {}
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for cell in cells:
        run = runs[cell.run_id]
        steps = run["train"]["max_steps"]
        flops = flops_per_step(cell.dataset, run) * steps
        counts[cell.dataset] += 1
        row = per_dataset.setdefault(cell.dataset, {"dataset": cell.dataset, "steps": steps,
                                                    "tokens_per_step": tokens_per_step(cell.dataset, run),
                                                    "pflop_per_run": flops / 1e15})
        for scenario, (mfu, floor_s) in SCENARIOS.items():
            hours = max(flops / (mfu * PEAK_BF16_TFLOPS * 1e12), steps * floor_s) / 3600
            row[scenario] = hours
            totals[scenario] += hours
    rows = []
    for name, row in per_dataset.items():
        row["runs"] = counts[name]
        rows.append(row)
    return rows, dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/paper.yaml"))
    args = parser.parse_args()
    rows, totals = estimate(args.config)
    print("| dataset | steps | tokens/step | PFLOP per run | GPU-h per run (optimistic – pessimistic) | runs |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['steps']:,} | {r['tokens_per_step']:,.0f} | {r['pflop_per_run']:,.1f} | "
              f"{r['optimistic']:.2f} – {r['pessimistic']:.2f} | {r['runs']} |")
    print(f"| **all {sum(r['runs'] for r in rows)} runs** | | | | "
          f"**{totals['optimistic']:,.0f} – {totals['pessimistic']:,.0f}** | |")


if __name__ == "__main__":
    main()
