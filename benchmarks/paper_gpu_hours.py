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

* ``--rescale``: the last measurement (``MEASURED``: one H100, bf16, BN, on the models of that time)
  carried over to today's models: each dataset's measured step time x the ratio of training FLOPs per
  step (today's model / the measured one, both counted as below), plus, for a CRF tagger, the
  sequential steps of its forward algorithm, which FLOPs do not see (``CRF_KERNELS`` launches of
  ``LAUNCH_S`` per token position of the batch).  An *estimate*, labelled so; ``--measure`` on a GPU
  replaces it.

The FLOP count per family: every linear layer of the stack (2 x weights per token), attention over
``seq`` keys (30 for sentences; Transformer-XL: memory + segment, three products: content, position,
values), and the output layer: a full softmax (2 x d x V), or an adaptive softmax's head for every token
plus each tail cluster for the tokens it holds (shares of a Zipf(1) law over the vocabulary, sorted by
frequency [assumed]); a CRF tagger adds its character CNN and input layer.

    python benchmarks/paper_gpu_hours.py [--config config/paper.yaml]            (estimate, Markdown table)
    python benchmarks/paper_gpu_hours.py --rescale                               (the measurement, rescaled)
    python benchmarks/paper_gpu_hours.py --measure [--steps 60] [--norms ln bn]  (on a GPU, measured)
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from normlab import workflow
from normlab.data.registry import DATASETS

PEAK_BF16_TFLOPS = 989.0
SCENARIOS = {"optimistic": (0.40, 0.015), "pessimistic": (0.15, 0.060)}
# vocabularies the registry leaves to the corpus ("full vocabulary"): the published sizes
FULL_VOCAB = {"ptb": 10_000, "wikitext103": 267_735}
# mean tokens per example where a batch is capped by sentence count, not tokens [assumed, typical
# published corpus statistics]; image tokens are exact (patches + CLS)
MEAN_TOKENS = {"conll2003": 14, "resume": 32, "imdb": 270, "yelp_polarity": 160, "dbpedia": 60}
MEAN_WORD_CHARS = 6  # characters per CoNLL-2003 token, for the character CNN [assumed]
# a CRF's forward algorithm runs one position at a time: ~4 small kernels forward, ~8 backward, each
# ~10 microseconds to launch on a GPU [assumed]; its batches are bucketed, so a batch spans ~MEAN_TOKENS
CRF_KERNELS, LAUNCH_S = 12, 10e-6

# The last measurement (docs/workflow.md): one NVIDIA H100 80GB, torch 2.11 + CUDA 13, bf16 autocast,
# BN, 2026-11-22, ms per step, and the model that was timed (the LMs per sentence with a full softmax,
# the NER models without a CRF); `--rescale` carries it over to today's models.
MEASURED = {
    "iwslt14_de_en": 52.8, "wmt16_en_de": 59.8, "ptb": 15.9, "wikitext103": 163.8, "conll2003": 12.9,
    "resume": 13.4, "imdb": 6.9, "yelp_polarity": 10.1, "dbpedia": 7.5, "cifar10": 35.2,
}
MEASURED_MODELS = {  # the run-config sections that set the timed models' shapes, where they differ today
    "ptb": {"task": "lm", "model": {"d_model": 512, "n_heads": 8, "d_ff": 2100, "n_layers": 3},
            "train": {"max_tokens": 3840}},
    "wikitext103": {"task": "lm", "model": {"d_model": 410, "n_heads": 10, "d_ff": 2100, "n_layers": 16},
                    "train": {"max_tokens": 9000}},
    "conll2003": {"task": "tagging", "model": {"d_model": 1792, "n_heads": 14, "d_ff": 3584, "n_layers": 2},
                  "train": {"max_tokens": 4096, "max_sentences": 16}},
    "resume": {"task": "tagging", "model": {"d_model": 256, "n_heads": 4, "d_ff": 512, "n_layers": 2},
               "train": {"max_tokens": 4096, "max_sentences": 16}},
}


def vocab_size(name: str) -> int:
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
    opts = DATASETS[name].options
    return opts.get("bpe_vocab_size") or opts.get("vocab_size") or FULL_VOCAB.get(name, 0)


def tokens_per_step(name: str, run: dict) -> float:
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
    train, family = run["train"], run["task"]
    if family == "image":
        side = 32 if name == "cifar10" else 28
        return train["batch_size"] * ((side // run["model"]["patch_size"]) ** 2 + 1)
    if family == "lm_stream":  # rows x segment: nothing padded
        return train["batch_size"] * run["model"].get("xl", {}).get("tgt_len", 32)
    if train.get("max_sentences"):
        return min(train["max_tokens"], train["max_sentences"] * MEAN_TOKENS[name])
    return train["max_tokens"]


def zipf_shares(vocab: int, bounds: list[int]) -> list[float]:
    """The share of running tokens in each frequency-ranked cluster ``bounds[i]:bounds[i+1]`` under a
    Zipf(1) law [assumed; real text puts more in the head]."""
    harmonic = np.cumsum(1.0 / np.arange(1, vocab + 1))
    return [(harmonic[hi - 1] - (harmonic[lo - 1] if lo else 0.0)) / harmonic[-1]
            for lo, hi in zip(bounds, bounds[1:], strict=False)]


def output_flops(d: int, vocab: int, xl: dict) -> float:
    """Forward FLOPs per token of the output layer: a full softmax, or the adaptive one (head + tails)."""
    cutoffs = list(xl.get("cutoffs", ()))
    if not cutoffs:
        return 2 * d * vocab
    bounds = [0, *cutoffs, vocab]
    shares = zipf_shares(vocab, bounds)
    div = xl.get("div_val", 1)
    flops = 2 * d * (bounds[1] + len(cutoffs))  # the head: shortlist + one row per tail cluster
    for i, share in enumerate(shares[1:], start=1):
        width = int(d // div**i)
        flops += share * (2 * width * (bounds[i + 1] - bounds[i]) + (2 * d * width if width != d else 0))
    return flops


def flops_per_step(name: str, run: dict) -> float:
    """Training FLOPs of one step: 3 x forward, forward = 2 x weights x tokens + attention (+ output)."""
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
    m, family = run["model"], run["task"]
    d, f, n_enc = m["d_model"], m["d_ff"], m["n_layers"]
    tokens = tokens_per_step(name, run)
    seq = 64 if family == "image" else 30  # typical sequence length for the attention term [assumed]
    if family == "lm_stream":  # relative attention over memory + segment; inner = heads x d_head
        xl = m.get("xl", {})
        inner = m["n_heads"] * (xl.get("d_head") or d // m["n_heads"])
        keys = xl.get("mem_len", 32) + xl.get("tgt_len", 32)
        fwd = 2 * n_enc * (4 * d * inner + 2 * d * f) * tokens + 3 * 2 * n_enc * keys * inner * tokens
        fwd += 2 * n_enc * keys * d * inner  # the position projection, once per step
        return 3 * (fwd + output_flops(d, vocab_size(name), xl) * tokens)
    layer = 4 * d * d + 2 * d * f
    fwd = 2 * n_enc * layer * tokens + 4 * n_enc * seq * d * tokens
    if family == "translation":  # decoder: self + cross attention + FFN, and the tied output projection
        n_dec = m.get("n_decoder_layers") or n_enc
        fwd += 2 * n_dec * (layer + 4 * d * d) * tokens + 8 * n_dec * seq * d * tokens
        fwd += 2 * d * vocab_size(name) * tokens
    elif family == "lm":
        fwd += 2 * d * vocab_size(name) * tokens
    elif family == "tagging" and m.get("crf") and m.get("crf_options", {}).get("char_cnn"):
        c = m["crf_options"]
        char, filters, out = c.get("char_dim", 30), c.get("char_filters", 30), c.get("char_out_dim", 30)
        per_token = MEAN_WORD_CHARS * 2 * char * filters * c.get("char_kernel", 3) + 2 * filters * out
        fwd += (per_token + 2 * (d + out) * d) * tokens  # the CNN and TENER's in_fc
    return 3 * fwd


def crf_loop_seconds(name: str, run: dict) -> float:
    """Per step, the CRF's sequential forward algorithm (forward and backward): one position at a time."""
    if run["task"] != "tagging" or not run["model"].get("crf"):
        return 0.0
    return MEAN_TOKENS[workflow.corpus_of(name)] * CRF_KERNELS * LAUNCH_S


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


def rescale(config: Path) -> tuple[list[dict], dict]:
    """``MEASURED`` carried over to today's models of ``config``: x FLOP ratio, + the CRF loop."""
    cfg, cells, runs = workflow.load_file(config, Path("workflows/schemas/config.schema.yaml"))
    rows, total = [], 0.0
    for name in dict.fromkeys(c.dataset for c in cells):
        corpus = workflow.corpus_of(name)
        own = [c for c in cells if c.dataset == name]
        run = runs[own[0].run_id]
        then = copy.deepcopy(run)
        for key, section in MEASURED_MODELS.get(corpus, {}).items():
            then[key] = section if key == "task" else {**run.get(key, {}), **section}
        if corpus in MEASURED_MODELS:
            then["model"] = {k: v for k, v in then["model"].items() if k not in ("xl", "crf", "crf_options")}
        ratio = flops_per_step(name, run) / flops_per_step(name, then)
        ms = MEASURED[corpus] * ratio + 1e3 * crf_loop_seconds(name, run)
        hours = sum(ms / 1e3 * runs[c.run_id]["train"]["max_steps"] for c in own) / 3600
        rows.append({"dataset": name, "steps": run["train"]["max_steps"], "measured_ms": MEASURED[corpus],
                     "flop_ratio": ratio, "ms": ms, "hours_per_run": hours / len(own), "runs": len(own),
                     "gpu_hours": hours, "changed": corpus in MEASURED_MODELS})
        total += hours
    return rows, {"total": total}


def zipf_stream(vocab: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ids drawn from a Zipf(1) law over ``vocab`` frequency-ranked ids (id 0 the most frequent)."""
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1))
    return np.searchsorted(cdf / cdf[-1], rng.random(n)).astype(np.int64)


def synthetic_like(name: str, run: dict):
    """A synthetic task with the shapes of dataset ``name`` (vocabulary, sentence length, classes, image;
    for a stream LM with an adaptive softmax, Zipf-distributed ids: its cost depends on the clusters hit)."""
    name = workflow.corpus_of(name)  # a dataset variant has its dataset's shapes
    from normlab.train import synthetic_task

    family = run["task"]
    if family == "lm_stream":
        from normlab.train.examples import TaskData
        from normlab.train.families.lm_stream import TokenStream

        rng = np.random.default_rng(0)
        rows, seg = run["train"]["batch_size"], run["model"].get("xl", {}).get("tgt_len", 32)
        n = {"train": 4 * rows * (seg + 1), "valid": 10 * 2 * (seg + 1), "test": 10 * 2 * (seg + 1)}
        splits = {s: TokenStream(zipf_stream(vocab_size(name), k, rng)) for s, k in n.items()}
        return TaskData("lm_stream", splits, vocab_size=vocab_size(name), bos_id=0, eos_id=0)
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
    parser.add_argument("--rescale", action="store_true",
                        help="the last H100 measurement carried over to today's models by FLOP ratio (an estimate)")
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
    if args.rescale:
        rows, totals = rescale(args.config)
        print("ESTIMATE: the H100 measurement (bf16, BN) x the FLOP ratio of today's model to the timed one, "
              "+ the CRF loop; re-measure with --measure on a GPU")
        print("| dataset | steps | measured ms/step (BN) | FLOP ratio | ms/step | GPU-h per run | runs "
              "| GPU-h, all runs |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            est = f"**{r['ms']:.1f}** (est.)" if r["changed"] else f"{r['ms']:.1f}"
            print(f"| {r['dataset']} | {r['steps']:,} | {r['measured_ms']:.1f} | {r['flop_ratio']:.2f} | {est} | "
                  f"{r['hours_per_run']:.2f} | {r['runs']} | {r['gpu_hours']:.1f} |")
        print(f"| **all {sum(r['runs'] for r in rows)} runs** | | | | | | | **{totals['total']:,.0f}** |")
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
