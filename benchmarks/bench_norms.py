"""Forward+backward time of every norm, as a ratio to ``ln``, and the cost of online TID recording.

    python benchmarks/bench_norms.py [--batch 64 --time 64 --dim 512 --repeats 30 --step-repeats 30 --seed 0
                                     --threads N --compile --allocator training|default]

All norms are timed in one run, round by round, in a new seeded random order each round (a fixed order
gave the norm timed after a slow one a position penalty), at a Transformer-like shape with ~10 % padding.
The table reports the median over rounds of each norm's time divided by ``ln``'s in the same round
(paired, so that the load of other processes cancels), and the minor page faults of its timed call
(first touches of memory that the C library had handed back to the system: a norm that allocates many
large temporaries pays for them here, and so can the norm timed after it).  By default glibc is told to
keep freed memory, as ``normlab train`` does on a CPU (``--allocator default`` leaves glibc as it is).
Reference rows time ``torch.nn.BatchNorm1d`` over all tokens (no padding mask: PyTorch's own fused BN
kernels) and ``torch.nn.functional.rms_norm`` (which ``rmsnorm`` does not use: it is composite on the
CPU).  Then a 6-layer residual FFN stack with 12 norms (the norm count of the RBN paper's encoder) is
trained with ``ln``, ``bn`` and ``rbn`` side by side (shuffled the same way), and
``OnlineTIDRecorder.record`` is timed against the ``bn`` training step.  ``--compile`` adds
``torch.compile``d copies of ``ln``, ``bn`` and ``rbn`` to both tables (compilation happens in the
untimed warm-up rounds).
"""

from __future__ import annotations

import argparse
import platform
import random
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from normlab.norms import NORMS, build_norm, regularization_loss
from normlab.tid import OnlineTIDRecorder
from normlab.train.runtime import keep_freed_memory

OPTIONS = {"rbn": {"penalty_mean": 0.1, "penalty_var": 0.01}, "powernorm": {"groups": 4, "warmup_iters": 0}}
NATIVE_BN = "torch BatchNorm1d (no mask)"  # a reference row: PyTorch's fused BN kernels on all tokens
TORCH_RMS = "torch F.rms_norm"  # a reference row: PyTorch's RMSNorm (composite on the CPU), what rmsnorm replaced
COMPILED = ("ln", "bn", "rbn")  # the norms that --compile adds once more, compiled
ALLOCATORS = ("training", "default")  # --allocator


def compiled_label(name: str) -> str:
    return f"{name} (torch.compile)"


class TorchRMSNorm(nn.Module):
    """torch.nn.functional.rms_norm with a gain, rmsnorm's eps (1e-8)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x, pad=None):
        return F.rms_norm(x, (x.shape[-1],), self.weight, 1e-8)


class NativeBatchNorm(nn.Module):
    """torch.nn.BatchNorm1d over all (batch·time) tokens, padding included: what fused kernels cost."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x, pad=None):
        return self.bn(x.reshape(-1, x.shape[-1])).view_as(x)


def padded_batch(batch: int, time_steps: int, dim: int, device: str):
    x = torch.randn(batch, time_steps, dim, device=device)
    lengths = torch.randint(int(0.8 * time_steps), time_steps + 1, (batch,), device=device)
    pad = torch.arange(time_steps, device=device).unsqueeze(0) >= lengths.unsqueeze(1)
    return x, pad


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def minor_page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def shuffled_rounds(names, rounds: int, seed: int):
    """Yield (round index, names in this round's order): a seeded permutation per round."""
    rng = random.Random(seed)
    for round_ in range(rounds):
        order = list(names)
        rng.shuffle(order)
        yield round_, order


def build_norms(args) -> dict[str, nn.Module]:
    def build(name):
        return build_norm(name, args.dim, **OPTIONS.get(name, {})).to(args.device)

    norms = {name: build(name) for name in NORMS}
    norms[NATIVE_BN] = NativeBatchNorm(args.dim).to(args.device)
    norms[TORCH_RMS] = TorchRMSNorm(args.dim).to(args.device)
    if args.compile:
        norms.update({compiled_label(name): torch.compile(build(name)) for name in COMPILED})
    return norms


def ratios_to(times: dict[str, list[float]], reference: str) -> dict[str, float]:
    """Median over rounds of each entry's time divided by ``reference``'s time in the same round.

    Pairing within a round cancels the load that other processes put on the machine from one round to
    the next (a ratio of medians does not: on a shared machine it moved by ±20 % between runs).
    """
    return {name: statistics.median(a / b for a, b in zip(t, times[reference], strict=True))
            for name, t in times.items()}


def time_fwd_bwd(norms: dict, args) -> tuple[dict[str, float], dict[str, float]]:
    """Per norm: fwd+bwd time as a ratio to ``ln`` (``ratios_to``), and mean minor page faults per call."""
    x, pad = padded_batch(args.batch, args.time, args.dim, args.device)
    grad = torch.randn_like(x)
    times: dict[str, list[float]] = {name: [] for name in norms}
    faults: dict[str, list[int]] = {name: [] for name in norms}
    for round_, order in shuffled_rounds(norms, args.warmup + args.repeats, args.seed):
        for name in order:
            inp = x.detach().requires_grad_(True)
            sync(args.device)
            start, faults_before = time.perf_counter(), minor_page_faults()
            out = norms[name](inp, pad)
            out.backward(grad)
            sync(args.device)
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
                faults[name].append(minor_page_faults() - faults_before)
    return ratios_to(times, "ln"), {n: statistics.mean(f) for n, f in faults.items()}


class ResidualFFNStack(nn.Module):
    """Post-Norm residual FFN blocks with two norms each: the norm count and widths of a 6-layer encoder."""

    def __init__(self, dim: int, layers: int, norm: str, **options):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleDict({
                "attn_proj": nn.Linear(dim, dim),
                "attn_norm": build_norm(norm, dim, **options),
                "fc1": nn.Linear(dim, 2 * dim),
                "fc2": nn.Linear(2 * dim, dim),
                "ffn_norm": build_norm(norm, dim, **options),
            })
            for _ in range(layers)
        )

    def forward(self, x, pad):
        for layer in self.layers:
            x = layer["attn_norm"](x + layer["attn_proj"](x), pad)
            x = layer["ffn_norm"](x + layer["fc2"](torch.relu(layer["fc1"](x))), pad)
        return x


STEP_NORMS = ("ln", "bn", "rbn")


def time_steps(setups: dict, args, after_step=None) -> tuple[dict[str, float], dict[str, float]]:
    """Training-step time per setup (model, callable, optimizer) over shuffled rounds: the ratio to the
    ``ln`` setup (``ratios_to``) and the median seconds.

    ``after_step(name, round_)``, when given, runs after each step, outside the timed interval.
    """
    x, pad = padded_batch(args.batch, args.time, args.dim, args.device)
    steps: dict[str, list[float]] = {name: [] for name in setups}
    repeats = args.repeats if args.step_repeats is None else args.step_repeats
    for round_, order in shuffled_rounds(setups, args.warmup + repeats, args.seed + 1):
        for name in order:
            model, run, opt = setups[name]
            sync(args.device)
            start = time.perf_counter()
            loss = run(x, pad).square().mean() + regularization_loss(model, x.shape[0] * x.shape[1])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync(args.device)
            if round_ >= args.warmup:
                steps[name].append(time.perf_counter() - start)
            if after_step is not None:
                after_step(name, round_)
    return ratios_to(steps, "ln"), {name: statistics.median(t) for name, t in steps.items()}


def time_training_steps(args) -> tuple[dict[str, float], float]:
    """Training step of the stack per norm as a ratio to ``ln`` (shuffled rounds), and the median time of
    one TID ``record`` call as a fraction of the median ``bn`` step."""
    setups = {}
    for name in STEP_NORMS:
        for label in (name, compiled_label(name)) if args.compile else (name,):
            model = ResidualFFNStack(args.dim, 6, name, **OPTIONS.get(name, {})).to(args.device)
            run = torch.compile(model) if label != name else model
            setups[label] = (model, run, torch.optim.AdamW(model.parameters(), lr=1e-4))
    recorder, records = OnlineTIDRecorder(setups["bn"][0]), []

    def record_tid(name, round_):
        if name == "bn":
            sync(args.device)
            start = time.perf_counter()
            recorder.record(round_)
            sync(args.device)
            if round_ >= args.warmup:
                records.append(time.perf_counter() - start)

    ratios, seconds = time_steps(setups, args, record_tid)
    recorder.flush()
    return ratios, statistics.median(records) / seconds["bn"]


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every norm benchmark takes (shape, rounds, seed, threads, device)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds of the fwd+bwd table")
    parser.add_argument("--step-repeats", type=int, default=None, help="timed rounds of the step table (--repeats)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the order of each round")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--allocator", choices=ALLOCATORS, default="training",
        help="training: glibc keeps freed memory, as `normlab train` runs on a CPU; default: glibc's own setting",
    )
    return parser


def setup(args) -> None:
    """Apply ``--threads`` and ``--seed``, and print the header every table needs."""
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = args.allocator == "training" and keep_freed_memory()
    torch.manual_seed(args.seed)
    print(f"# torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, "
          f"allocator: {'glibc keeps freed memory (as training)' if kept else 'default'}")
    steps = args.repeats if args.step_repeats is None else args.step_repeats
    print(f"# shape (batch, time, dim) = ({args.batch}, {args.time}, {args.dim}), ~10% padding, "
          f"medians of {args.repeats} (fwd+bwd) and {steps} (steps) rounds in a shuffled order (seed {args.seed})\n")


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd ln, bn and rbn")
    args = parser.parse_args()
    setup(args)
    ratios, faults = time_fwd_bwd(build_norms(args), args)
    print("| norm | fwd+bwd / ln | page faults per call |")
    print("|---|---|---|")
    for name, ratio in ratios.items():
        print(f"| `{name}` | {ratio:.2f} | {faults[name]:.0f} |")
    steps, record = time_training_steps(args)
    print("\nTraining step of a 6-layer Post-Norm residual FFN stack (12 norms, AdamW), same shape:\n")
    print("| norm | step / ln step |")
    print("|---|---|")
    for name, ratio in steps.items():
        print(f"| `{name}` | {ratio:.2f} |")
    print(f"\nOnline TID recording of the 12 BN layers, called every step: {100 * record:.2f} % "
          f"of a training step (recording every N steps costs 1/N of that).")


if __name__ == "__main__":
    main()
