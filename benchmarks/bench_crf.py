"""Our linear-chain CRF beside the ``pytorch-crf`` package: NLL forward+backward and Viterbi decoding.

    python benchmarks/bench_crf.py [--batch 32 --time 40 --tags 9 20 --repeats 50]

pytorch-crf is not a normlab dependency; install it next to normlab to get the comparison
(``pip install pytorch-crf==0.7.2``), otherwise only our timings are printed.  All variants are
timed in one run, in a shuffled order every round (so machine load hits them alike), on one thread,
with right-padded sentences of random length in [time/2, time].  The table reports medians over
rounds and ours as a ratio to pytorch-crf; before timing, the two are checked to agree on log Z and
on the decoded paths (with identical parameters).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from normlab.models.crf import LinearChainCRF

try:
    from torchcrf import CRF as LibraryCRF
except ImportError:  # the comparison is optional
    LibraryCRF = None


def batch(b: int, t: int, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(b, t, n, generator=g)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    lengths[0] = t
    pad = torch.arange(t)[None] >= lengths[:, None]
    tags = torch.randint(0, n, (b, t), generator=g).masked_fill(pad, 0)
    return emissions, tags, pad


def variants(n: int, emissions, tags, pad):
    ours = LinearChainCRF(n)
    out = {}

    def ours_nll():
        e = emissions.clone().requires_grad_()
        ours.nll(e, tags, pad).mean().backward()

    out["ours: NLL fwd+bwd"] = ours_nll
    out["ours: Viterbi"] = lambda: ours.decode(emissions, pad)
    if LibraryCRF is not None:
        lib = LibraryCRF(n, batch_first=True)
        with torch.no_grad():  # same parameters, so results can be compared
            lib.transitions.copy_(ours.transitions)
            lib.start_transitions.copy_(ours.start)
            lib.end_transitions.copy_(ours.end)
        keep = ~pad

        def lib_nll():
            e = emissions.clone().requires_grad_()
            (-lib(e, tags, keep, reduction="mean")).backward()

        out["pytorch-crf: NLL fwd+bwd"] = lib_nll
        out["pytorch-crf: Viterbi"] = lambda: lib.decode(emissions, keep)
        check(ours, lib, emissions, tags, pad)
    return out


def check(ours, lib, emissions, tags, pad):
    keep = ~pad
    with torch.no_grad():
        a = ours.nll(emissions, tags, pad)
        b = -lib(emissions, tags, keep, reduction="none")
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
        paths, _ = ours.decode(emissions, pad)
        lib_paths = lib.decode(emissions, keep)
        for row, lib_row in zip(paths.tolist(), lib_paths, strict=True):
            assert row[: len(lib_row)] == lib_row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--time", type=int, default=40)
    ap.add_argument("--tags", type=int, nargs="+", default=[9, 20])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(0)
    print(f"batch {args.batch} x {args.time} tokens, torch {torch.__version__}, 1 thread")
    if LibraryCRF is None:
        print("pytorch-crf is not installed: our timings only (pip install pytorch-crf==0.7.2 to compare)")
    print("\n| tags | variant | median ms | ours / pytorch-crf |\n|---|---|---|---|")
    for n in args.tags:
        funcs = variants(n, *batch(args.batch, args.time, n, seed=n))
        times = {name: [] for name in funcs}
        for r in range(args.warmup + args.repeats):
            order = list(funcs)
            rng.shuffle(order)
            for name in order:
                start = time.perf_counter()
                funcs[name]()
                if r >= args.warmup:
                    times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        for name, m in med.items():
            other = name.replace("ours", "pytorch-crf")
            ratio = f"{m / med[other]:.2f}" if name.startswith("ours") and other in med else ""
            print(f"| {n} | {name} | {m * 1e3:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
