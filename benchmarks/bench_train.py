"""Training throughput per model family with ln, bn, rbn and powernorm, side by side, as ratios to ln.

    .venv/bin/python benchmarks/bench_train.py [--steps 20] [--d-model 128] [--device auto]

Each cell times full training steps (forward, loss + RBN penalty, backward, AdamW) of the engine's
own code on a fixed set of synthetic batches, after warm-up steps; the median over repeats is kept.
Not a test: it prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from normlab.norms import regularization_loss
from normlab.train import validate
from normlab.train.batching import collate, split_batches
from normlab.train.engine import build_run_model
from normlab.train.families import FAMILIES
from normlab.train.objectives import training_loss
from normlab.train.runtime import DEVICES
from normlab.train.tasks import synthetic_task

NORMS = {"ln": {}, "bn": {}, "rbn": {"penalty_mean": 0.1, "penalty_var": 0.01}, "powernorm": {}}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_stepper(family, norm, options, args, device):
    """A closure running the engine's training step on fixed batches; returns (run_all, tokens, unit)."""
    task = synthetic_task(
        family, seed=0, n_train=2048, vocab_size=1000, min_len=20, max_len=40, image_size=32
    )
    model_cfg = dict(d_model=args.d_model, n_heads=4, d_ff=4 * args.d_model, n_layers=args.layers, norm=norm,
                     norm_options=options, placement="pre", dropout=0.1, patch_size=4)
    # the run config fills in what the engine would (PowerNorm's groups and warm-up)
    cfg = validate({"task": family, "data": {"source": "synthetic"}, "model": model_cfg,
                    "optim": {"warmup_steps": 1000}})
    torch.manual_seed(0)
    model = build_run_model(cfg, task).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    index_batches = split_batches(task, "train", args.max_tokens, args.images, seed=0)
    batches = [collate(task, "train", idx).to(device) for idx in index_batches[: args.steps]]
    use_bf16 = device.type == "cuda"

    def step(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = training_loss(model, family, batch, 0.1)
        total = loss + regularization_loss(model, batch.n_targets)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    def run_all():
        for batch in batches:
            step(batch)

    for batch in batches[:3]:  # warm-up
        step(batch)
    return run_all, sum(b.n_tokens for b in batches), "images/s" if family == "image" else "tokens/s"


def measure(family, args, device) -> tuple[dict, str]:
    """Throughput per norm; the norms take turns in every repeat so that load from other processes
    on a shared machine falls on all of them alike."""
    steppers = {norm: make_stepper(family, norm, options, args, device) for norm, options in NORMS.items()}
    rates = {norm: [] for norm in NORMS}
    for _ in range(args.repeats):
        for norm, (run_all, tokens, _) in steppers.items():
            sync(device)
            start = time.perf_counter()
            run_all()
            sync(device)
            rates[norm].append(tokens / (time.perf_counter() - start))
    unit = next(iter(steppers.values()))[2]
    return {norm: statistics.median(r) for norm, r in rates.items()}, unit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    name = torch.cuda.get_device_name() if use_cuda else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device: {name}; torch {torch.__version__}; d_model {args.d_model}, {args.layers} layers, Pre-Norm, "
        f"{args.steps} steps x {args.repeats} repeats (median)\n"
    )
    print("| family | unit | ln | bn / ln | rbn / ln | powernorm / ln |")
    print("|---|---|---|---|---|---|")
    for family in FAMILIES:
        rates, unit = measure(family, args, device)
        # throughput ratio ln/x = step-time ratio x/ln: > 1 means slower than ln
        cells = " | ".join(f"{rates['ln'] / rates[n]:.2f}x" for n in ("bn", "rbn", "powernorm"))
        print(f"| {family} | {unit} | {rates['ln']:.0f} | {cells} |", flush=True)
    print("\nratios: step time relative to ln (ln throughput / norm throughput); 1.00x = as fast as ln")


if __name__ == "__main__":
    main()
