"""Estimate the GPU-hours of the paper configuration (config/paper.yaml) on one modern GPU.

Two ways, side by side:

* ``--measure`` (on a GPU): for each dataset and norm it builds the cell's resolved run config, swaps
  the corpus for a synthetic one of the same vocabulary, sentence length, classes and image size (step
  time depends only on those shapes), trains ``--steps`` steps with the real engine (bf16 autocast, TID
  recording, the optimizer) and times the steps after the first log window (compilation and warm-up).
  Hours = measured seconds per step x the cell's ``max_steps``; evaluation and the probe are not counted.
* without it, an *estimate* from counted work: for every cell of the paper grid it counts the
  training FLOPs from the resolved run config (6 x matmul weights x tokens, plus attention), and
  turns them into hours under two stated assumptions for an H100-class GPU in bf16:

    optimistic   40 % of the 989 TFLOP/s dense bf16 peak, and a floor of 15 ms per step
    pessimistic  15 % of that peak,                        and a floor of 60 ms per step

The floor is the per-step overhead of eager PyTorch (kernel launches, optimizer, logging) that
dominates the small models (IMDB's 1-layer d=32 classifier, CoNLL's batches of 16 sentences).
Evaluation (beam search on test) and the probe add roughly 5-10 % and are not counted.

    python benchmarks/paper_gpu_hours.py [--config config/paper.yaml]            (estimate, Markdown table)
    python benchmarks/paper_gpu_hours.py --measure [--steps 60] [--norms ln bn]  (on a GPU, measured)
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
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
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
    opts = DATASETS[name].options
    return opts.get("bpe_vocab_size") or opts.get("vocab_size") or FULL_VOCAB.get(name, 0)


def tokens_per_step(name: str, run: dict) -> float:
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
    train, family = run["train"], DATASETS[name].family
    if family == "image":
        side = 32 if name == "cifar10" else 28
        return train["batch_size"] * ((side // run["model"]["patch_size"]) ** 2 + 1)
    if train.get("max_sentences"):
        return min(train["max_tokens"], train["max_sentences"] * MEAN_TOKENS[name])
    return train["max_tokens"]


def flops_per_step(name: str, run: dict) -> float:
    """Training FLOPs of one step: 3 x forward, forward = 2 x weights x tokens + attention."""
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
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


def synthetic_like(name: str, run: dict):
    """A synthetic task with the shapes of dataset ``name`` (vocabulary, sentence length, classes, image)."""
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
    from normlab.train import synthetic_task

    family = DATASETS[name].family
    if family == "image":
        return synthetic_task("image", n_train=2048, n_valid=8, n_test=8, n_classes=10,
                              image_size=32 if name == "cifar10" else 28)
    length = MEAN_TOKENS.get(name, 30)
    return synthetic_task(family, n_train=8192, n_valid=8, n_test=8, vocab_size=max(vocab_size(name), 64),
                          min_len=max(2, int(length * 0.75)), max_len=int(length * 1.25) + 1,
                          n_classes=DATASETS[name].options.get("n_classes", 4))


def measure(config: Path, steps: int, norms: list[str]) -> tuple[list[dict], dict]:
    """Seconds per training step of each dataset x norm, timed with the real engine on this machine."""
    import torch

    from normlab.train import train

    cfg, cells, runs = workflow.load_file(config, Path("workflows/schemas/config.schema.yaml"))
    log_every = max(steps // 3, 1)
    counts: dict[str, int] = defaultdict(int)
    for cell in cells:
        counts[cell.dataset] += 1
    rows, total = [], 0.0
    for name in dict.fromkeys(c.dataset for c in cells):
        row = {"dataset": name, "runs": counts[name], "steps": None}
        # an untimed warm-up run first: the first run of a dataset's shapes pays one-off costs (kernel
        # selection, allocator growth) that a long run amortises; without it the first norm looked slower
        for i, norm in enumerate([norms[0], *norms]):
            cell = next((c for c in cells if c.dataset == name and c.norm == norm), None)
            if cell is None:
                continue
            run = copy.deepcopy(runs[cell.run_id])
            row["steps"] = run["train"]["max_steps"]
            run["train"].update(max_steps=steps, log_every=log_every, eval_every=10 * steps,
                                checkpoint_every=10 * steps, progress="off")
            with tempfile.TemporaryDirectory() as tmp:
                train(run, tmp, task=synthetic_like(name, run), stop_at_step=steps)
                logged = [json.loads(line) for line in Path(tmp, "metrics.jsonl").read_text().splitlines()]
            timed = [r for r in logged if r.get("kind") == "train"]
            first, last = timed[0], timed[-1]
            if i == 0:  # the warm-up run
                continue
            row[norm] = (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
            print(f"{name} {norm}: {row[norm] * 1e3:.1f} ms/step", flush=True)
        # the grid's cells of this dataset: each norm's cells at that norm's time, others at the slowest
        slowest = max(row.get(n, 0.0) for n in norms)
        hours = sum(row.get(c.norm, slowest) * runs[c.run_id]["train"]["max_steps"]
                    for c in cells if c.dataset == name) / 3600
        row["gpu_hours"] = hours
        total += hours
        rows.append(row)
    return rows, {"measured": total, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/paper.yaml"))
    parser.add_argument("--measure", action="store_true", help="time real training steps on this machine")
    parser.add_argument("--steps", type=int, default=60, help="--measure: steps per dataset x norm")
    parser.add_argument("--norms", nargs="+", default=["ln", "bn"], help="--measure: norms to time")
    args = parser.parse_args()
    if args.measure:
        rows, totals = measure(args.config, args.steps, args.norms)
        print(f"measured on {totals['device']}, {args.steps} steps each, timed after the first log window")
        print("| dataset | steps | " + " | ".join(f"ms/step {n}" for n in args.norms) + " | GPU-h, all runs | runs |")
        print("|---|---|" + "---|" * len(args.norms) + "---|---|")
        for r in rows:
            cols = " | ".join(f"{r[n] * 1e3:.1f}" if n in r else "–" for n in args.norms)
            print(f"| {r['dataset']} | {r['steps']:,} | {cols} | {r['gpu_hours']:.1f} | {r['runs']} |")
        print(f"| **all {sum(r['runs'] for r in rows)} runs** | | " + "| " * len(args.norms)
              + f"**{totals['measured']:,.0f}** | |")
        return
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
