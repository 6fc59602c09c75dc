"""Forward+backward time of every norm, as a ratio to ``ln``, and the cost of online TID recording.

    python benchmarks/bench_norms.py [--batch 64 --time 64 --dim 512 --repeats 30]

All norms are timed in one run, interleaved round by round (so machine load hits them alike), at a
Transformer-like shape with ~10 % padding; the table reports each norm's median over rounds divided by
``ln``'s, and the minor page faults of its timed call (first touches of memory the C library had
handed back to the system: ``rmsnorm``, ``powernorm`` and ``pn_vanilla`` churn thousands of pages per
call, and the norm timed after them in a round can pay for that too).  ``bn``/``rbn`` appear as
built by default (their fused C kernel on a CPU where it builds) and again with ``kernel="eager"``; a last row times
``torch.nn.BatchNorm1d`` over all tokens (no padding mask), the cost of PyTorch's own fused BN
kernels on the same machine.  Then a 6-layer residual FFN stack with 12 norms (the norm count of the
RBN paper's encoder) is trained with ``ln``, ``bn``, ``rbn`` and eager ``bn`` side by side, and
``OnlineTIDRecorder.record`` is timed against the ``bn`` training step.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import torch
from torch import nn

from normlab.norms import NORMS, build_norm, fused, regularization_loss
from normlab.tid import OnlineTIDRecorder

OPTIONS = {"rbn": {"penalty_mean": 0.1, "penalty_var": 0.01}, "powernorm": {"groups": 4, "warmup_iters": 0}}
NATIVE_BN = "torch BatchNorm1d (no mask)"  # a reference row: PyTorch's fused BN kernels on all tokens
EAGER = {f"{name} (eager)": name for name in ("bn", "rbn")}  # bn/rbn's PyTorch-ops path (GPUs run it)


def variants() -> dict[str, tuple[str, dict]]:
    """Table label -> (norm name, build options): every registered norm as built by default, then eager BN."""
    out = {name: (name, OPTIONS.get(name, {})) for name in NORMS}
    out.update({label: (name, {**OPTIONS.get(name, {}), "kernel": "eager"}) for label, name in EAGER.items()})
    return out


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


def time_norms(args) -> tuple[dict[str, float], dict[str, float]]:
    """Per norm: median fwd+bwd seconds and mean minor page faults of the timed call."""
    x, pad = padded_batch(args.batch, args.time, args.dim, args.device)
    grad = torch.randn_like(x)
    norms = {label: build_norm(name, args.dim, **opts).to(args.device) for label, (name, opts) in variants().items()}
    norms[NATIVE_BN] = NativeBatchNorm(args.dim).to(args.device)
    times: dict[str, list[float]] = {name: [] for name in norms}
    faults: dict[str, list[int]] = {name: [] for name in norms}
    for round_ in range(args.warmup + args.repeats):
        for name, norm in norms.items():
            inp = x.detach().requires_grad_(True)
            sync(args.device)
            start, faults_before = time.perf_counter(), minor_page_faults()
            out = norm(inp, pad)
            out.backward(grad)
            sync(args.device)
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
                faults[name].append(minor_page_faults() - faults_before)
    return {name: statistics.median(t) for name, t in times.items()}, {n: statistics.mean(f) for n, f in faults.items()}


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


STEP_NORMS = ("ln", "bn", "rbn", "bn (eager)")


def time_training_steps(args) -> tuple[dict[str, float], float]:
    """Median training-step time of the stack per norm (interleaved), and of one TID ``record`` call."""
    x, pad = padded_batch(args.batch, args.time, args.dim, args.device)
    setups = {}
    table = variants()
    for label in STEP_NORMS:
        name, opts = table[label]
        model = ResidualFFNStack(args.dim, 6, name, **opts).to(args.device)
        setups[label] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), OnlineTIDRecorder(model))
    steps: dict[str, list[float]] = {name: [] for name in STEP_NORMS}
    records: list[float] = []
    for i in range(args.warmup + args.repeats):
        for name, (model, opt, recorder) in setups.items():
            sync(args.device)
            start = time.perf_counter()
            loss = model(x, pad).square().mean() + regularization_loss(model, x.shape[0] * x.shape[1])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync(args.device)
            mid = time.perf_counter()
            if i >= args.warmup:
                steps[name].append(mid - start)
            if name == "bn":
                recorder.record(i)
                sync(args.device)
                if i >= args.warmup:
                    records.append(time.perf_counter() - mid)
    setups["bn"][2].flush()
    return {name: statistics.median(t) for name, t in steps.items()}, statistics.median(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)

    print(f"# torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print(f"# shape (batch, time, dim) = ({args.batch}, {args.time}, {args.dim}), ~10% padding, "
          f"median of {args.repeats} interleaved rounds")
    ok, why = fused.available()
    print(f"# bn/rbn default kernel on CPU: {'fused (C, OpenMP)' if ok else 'eager: ' + why}\n")
    medians, faults = time_norms(args)
    print("| norm | fwd+bwd / ln | page faults per call |")
    print("|---|---|---|")
    for name, t in medians.items():
        print(f"| `{name}` | {t / medians['ln']:.2f} | {faults[name]:.0f} |")
    steps, record = time_training_steps(args)
    print("\nTraining step of a 6-layer Post-Norm residual FFN stack (12 norms, AdamW), same shape:\n")
    print("| norm | step / ln step |")
    print("|---|---|")
    for name, t in steps.items():
        print(f"| `{name}` | {t / steps['ln']:.2f} |")
    print(f"\nOnline TID recording of the 12 BN layers, called every step: {100 * record / steps['bn']:.2f} % "
          f"of a training step (recording every N steps costs 1/N of that).")


if __name__ == "__main__":
    main()
