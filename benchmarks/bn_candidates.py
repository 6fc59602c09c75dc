"""How bn's implementation was chosen: the candidates for masked BatchNorm side by side, as ratios to ln.

    python benchmarks/bn_candidates.py [--repeats 30 --threads N --seed 0]

The same shape, padding, shuffled rounds and 12-norm training stack as ``bench_norms.py``.  Candidates,
all with bn's semantics (statistics over the non-pad tokens, clamp eps, biased variance):

* the autograd Function with a written-out backward that ``normlab.norms.batch`` implements (chosen);
* plain autograd over the same formula;
* ``torch.compile`` of that plain formula (AOTAutograd derives and fuses the backward);
* the Function with its arithmetic in four compiled pieces (sums, normalise, grad sums, grad input),
  the shape a distributed all-reduce needs between them;
* ``torch.compile`` of the bn module itself (dynamo traces the Function: what compiling a model gives);
* ``torch.nn.BatchNorm1d`` over all tokens, no mask (PyTorch's own kernels, a reference only).

Compilation happens in a first call per candidate, whose time the first table shows (with Inductor's
cache as it is: set ``TORCHINDUCTOR_CACHE_DIR`` to an empty folder for a cold one), then untimed
warm-up rounds.  docs/benchmarks.md has the results and the choice.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch
from torch import nn

from normlab.norms import build_norm

_spec = importlib.util.spec_from_file_location("bench_norms", Path(__file__).with_name("bench_norms.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def plain_formula(x, keep, weight, bias, eps: float):
    """Masked BN as one differentiable expression (keep: 1.0 at tokens, 0.0 at padding)."""
    x2, k = x.reshape(-1, x.shape[-1]), keep.reshape(-1, 1)
    n = k.sum().clamp_min(1.0)
    xk = x2 * k
    mean = xk.sum(0) / n
    var = ((xk * x2).sum(0) / n - mean * mean).clamp_min(0.0)
    scale = var.clamp_min(eps).rsqrt() * weight
    return (x2 * scale + (bias - mean * scale)).reshape(x.shape)


def _sums(x2, k):
    xk = x2 * k
    return torch.cat([xk.sum(0), (xk * x2).sum(0), k.sum().reshape(1)])


def _normalize(x2, sums, weight, bias, eps: float):
    c = x2.shape[1]
    n = sums[-1].clamp_min(1.0)
    mean = sums[:c] / n
    var = (sums[c : 2 * c] / n - mean * mean).clamp_min(0.0)
    inv = var.clamp_min(eps).rsqrt()
    scale = inv * weight
    return torch.addcmul(bias - mean * scale, x2, scale), mean, var, inv, scale, n


def _grad_sums(dy, x2, mean, var, inv, scale, weight, n, eps: float):
    d_scale, d_shift = (dy * x2).sum(0), dy.sum(0)
    net = d_scale - mean * d_shift
    d_var = -0.5 * inv**3 * (net * weight) * (var >= eps)
    d_mean = -d_shift * scale
    return torch.cat([(d_mean - 2.0 * mean * d_var) / n, 2.0 * d_var / n]), net * inv, d_shift


def _grad_input(dy, x2, k, scale, d_sums):
    c = x2.shape[1]
    return dy * scale + k * (d_sums[:c] + x2 * d_sums[c:])


class _CompiledPieces(torch.autograd.Function):
    pieces: dict = {}

    @staticmethod
    def forward(ctx, x, keep, weight, bias, eps):
        p = _CompiledPieces.pieces
        x2, k = x.reshape(-1, x.shape[-1]), keep.reshape(-1, 1)
        y, mean, var, inv, scale, n = p["normalize"](x2, p["sums"](x2, k), weight, bias, eps)
        ctx.save_for_backward(x2, k, weight, mean, var, inv, scale, n)
        ctx.eps, ctx.shape = eps, x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        p = _CompiledPieces.pieces
        x2, k, weight, mean, var, inv, scale, n = ctx.saved_tensors
        dy2 = dy.reshape(x2.shape)
        d_sums, d_weight, d_bias = p["grad_sums"](dy2, x2, mean, var, inv, scale, weight, n, ctx.eps)
        return p["grad_input"](dy2, x2, k, scale, d_sums).view(ctx.shape), None, d_weight, d_bias, None


def compiled_pieces(x, keep, weight, bias, eps: float):
    if not _CompiledPieces.pieces:
        funcs = {"sums": _sums, "normalize": _normalize, "grad_sums": _grad_sums, "grad_input": _grad_input}
        _CompiledPieces.pieces.update({k: torch.compile(f, dynamic=True) for k, f in funcs.items()})
    return _CompiledPieces.apply(x, keep, weight, bias, eps)


class FormulaBN(nn.Module):
    """bn's parameters around one of the candidate functions (training-mode statistics only)."""

    def __init__(self, dim: int, fn):
        super().__init__()
        self.fn = fn
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x, pad):
        return self.fn(x, (~pad).to(x.dtype), self.weight, self.bias, 1e-5)


CHOSEN = "bn: autograd Function, written-out backward (chosen)"


def candidates(dim: int) -> dict:
    compiled_formula = torch.compile(plain_formula, dynamic=True)
    return {
        "ln": lambda: build_norm("ln", dim),
        CHOSEN: lambda: build_norm("bn", dim),
        "bn: plain autograd": lambda: FormulaBN(dim, plain_formula),
        "bn: torch.compile(plain formula)": lambda: FormulaBN(dim, compiled_formula),
        "bn: Function, four compiled pieces": lambda: FormulaBN(dim, compiled_pieces),
        "bn: torch.compile(bn module)": lambda: torch.compile(build_norm("bn", dim)),
        "torch BatchNorm1d (no mask)": lambda: bench.NativeBatchNorm(dim),
    }


STEP_CANDIDATES = ("ln", CHOSEN, "bn: plain autograd", "bn: torch.compile(plain formula)",
                   "bn: Function, four compiled pieces")


def check_candidates(factories: dict, dim: int) -> None:
    """Every bn candidate gives bn's output and input gradient on a padded batch (else it measures nothing)."""
    x, pad = bench.padded_batch(4, 8, dim, "cpu")
    upstream = torch.randn_like(x)
    results = {}
    for name, make in factories.items():
        if name.startswith("bn"):
            inp = x.clone().requires_grad_(True)
            out = make()(inp, pad)
            (out * upstream).sum().backward()
            results[name] = (out.detach(), inp.grad)
    for name, (out, grad) in results.items():
        torch.testing.assert_close(out, results[CHOSEN][0], rtol=1e-4, atol=1e-4, msg=f"{name}: output")
        torch.testing.assert_close(grad, results[CHOSEN][1], rtol=1e-4, atol=1e-4, msg=f"{name}: gradient")


class Stack(bench.ResidualFFNStack):
    """bench_norms' 12-norm stack with a candidate in every norm's place."""

    def __init__(self, dim: int, make):
        super().__init__(dim, 6, "ln")
        for layer in self.layers:
            layer["attn_norm"], layer["ffn_norm"] = make(), make()


def main() -> None:
    args = bench.arguments(__doc__.splitlines()[0]).parse_args()
    bench.setup(args)
    factories = candidates(args.dim)
    norms = {name: make().to(args.device) for name, make in factories.items()}
    first_call = {}  # compilation happens here (set TORCHINDUCTOR_CACHE_DIR to an empty folder for a cold cache)
    x, pad = bench.padded_batch(args.batch, args.time, args.dim, args.device)
    for name, norm in norms.items():
        start = time.perf_counter()
        norm(x.detach().requires_grad_(True), pad).sum().backward()
        first_call[name] = time.perf_counter() - start
    check_candidates(factories, args.dim)
    ratios, _ = bench.time_fwd_bwd(norms, args)
    print("| candidate | fwd+bwd / ln | first call, s |\n|---|---|---|")
    for name, ratio in ratios.items():
        print(f"| {name} | {ratio:.2f} | {first_call[name]:.1f} |")
    setups = {}
    for name in STEP_CANDIDATES:
        torch.manual_seed(0)
        model = Stack(args.dim, factories[name]).to(args.device)
        setups[name] = (model, model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    steps, _ = bench.time_steps(setups, args)
    print("\n| candidate | training step / ln step |\n|---|---|")
    for name, ratio in steps.items():
        print(f"| {name} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
