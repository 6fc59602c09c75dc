"""The prepared GPU check: is every norm right on the accelerator, and what do they cost there?

    python benchmarks/device_check.py --out OUT            # one GPU, <= 8 minutes
    python benchmarks/device_check.py --out OUT --short    # <= 1.5 minutes: every path once, fewer repeats
    python benchmarks/device_check.py --out OUT --tiny     # CPU, seconds: the same code at toy sizes (a test)

Three sections, one tidy row per measurement in OUT/device_check.csv (and OUT/device_check.json with
the machine, the versions and the settings); a Markdown summary on stdout; exit status 1 if an
equality check fails.

* ``equality``: every norm of ``normlab.norms.NORMS`` against a float64 CPU reference with the same
  weights and inputs, over three training steps (forward, gradient of the input and of every
  parameter, RBN's penalty included) and the running statistics after them, then an inference
  forward.  Targets: ``cpu/fp32``, ``<device>/fp32``, ``<device>/bf16`` (bf16 input under autocast,
  against the reference on the same rounded input) and, on a GPU, ``cuda-vs-cpu/fp32`` (CUDA fp32
  against CPU fp32 directly).  The value is the largest absolute difference divided by the largest
  reference magnitude over the quantity's tensors; the tolerances (``TOLERANCE``) are fixed here,
  before any GPU run.
* ``norm_time``: forward + backward of ln / bn / rbn / dyt on a padded (128 x 32) x 512 batch (4,096
  positions, the paper's batch), fp32 and bf16: median over repeats of CUDA-event timings after a
  warm-up, the norms in a shuffled order in every repeat; ratios to ln.
* ``train_step``: the IWSLT14 training step of config/paper.yaml's model (6+6 layers, d 512, the
  cell ``iwslt14_de_en/post/<norm>/seed1``) for ln / bn / rbn on synthetic batches of IWSLT14's
  shape (4,096 tokens per batch: 128 sentence pairs padded to 32, a 10k vocabulary), fp32 and bf16,
  eager and with every Transformer block compiled (``torch.compile``; embeddings, loss and AdamW stay
  eager); target tokens per second (fairseq's ``wps``), all tokens per second, and ratios to ln of the
  same precision and compile setting.  The configurations take turns in a shuffled order each round.
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from normlab.models.blocks import TransformerBlock
from normlab.norms import NORMS, build_norm, regularization_loss
from normlab.train import validate
from normlab.train.batching import collate, split_batches
from normlab.train.engine import build_run_model
from normlab.train.objectives import training_loss
from normlab.train.tasks import synthetic_task

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("section", "norm", "precision", "compiled", "target", "quantity", "metric", "value", "unit",
           "tolerance", "passed")
# options that exercise each norm's whole code path in three training steps
NORM_OPTIONS = {
    "rbn": {"penalty_mean": 0.5, "penalty_var": 0.1},
    "powernorm": {"groups": 4, "warmup_iters": 1},  # step 1 in warm-up, steps 2-3 on running statistics
}
# max |target - reference| / max |reference|, fixed before the first GPU run
TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2}
TIMED_NORMS = ("ln", "bn", "rbn", "dyt")
STEP_NORMS = ("ln", "bn", "rbn")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Mode:
    norm_shape: tuple[int, int, int]  # (sentences, positions, channels) of the equality and timing batches
    time_warmup: int
    time_repeats: int
    time_inner: int  # fwd+bwd per timed repeat
    step_model: dict = field(default_factory=dict)  # over the paper cell's model (empty: the paper's)
    step_vocab: int = 10_000
    step_len: int = 31  # source tokens; the target (31 + EOS) pads to 32 positions
    step_max_tokens: int = 4096
    step_warmup: int = 10
    step_rounds: int = 3
    step_steps: int = 30  # timed steps per configuration and round
    compiled: tuple[tuple[str, str], ...] = tuple((n, p) for n in STEP_NORMS for p in PRECISIONS)
    compile_backend: str = "inductor"


MODES = {
    "full": Mode((128, 32, 512), time_warmup=10, time_repeats=15, time_inner=20),
    "short": Mode((128, 32, 512), time_warmup=3, time_repeats=5, time_inner=5, step_warmup=3, step_rounds=2,
                  step_steps=5, compiled=(("ln", "bf16"),)),
    "tiny": Mode((4, 8, 16), time_warmup=1, time_repeats=2, time_inner=2,
                 step_model=dict(d_model=16, n_heads=2, d_ff=32, n_layers=1, n_decoder_layers=1),
                 step_vocab=50, step_len=7, step_max_tokens=128, step_warmup=1, step_rounds=2, step_steps=2,
                 compiled=(("ln", "fp32"),), compile_backend="eager"),
}


def row(section, **values) -> dict:
    return {key: values.get(key, "") for key in COLUMNS} | {"section": section}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def elapsed_ms(fn, device: torch.device) -> float:
    """Wall time of ``fn()`` in ms: CUDA events on a GPU, the host clock on a CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def padded_batch(shape, seed: int):
    """(x, pad_mask): x ~ N(0.5, 2) (a mean for the batch statistics to track), lengths from T/2 to T."""
    b, t, c = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, generator=g, dtype=torch.float64) * 2 + 0.5
    lengths = torch.randint(max(t // 2, 1), t + 1, (b,), generator=g)
    lengths[0] = t
    return x, torch.arange(t)[None, :] >= lengths[:, None]


# --- equality -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A way to run a norm: its device, the dtype of its input and module, bf16 autocast or not."""

    device: torch.device
    input_dtype: torch.dtype
    module_dtype: torch.dtype
    autocast: bool = False

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.input_dtype)


REFERENCE = Target(torch.device("cpu"), torch.float64, torch.float64)


def _step(norm, x, pad, grad_out, target: Target):
    """One training forward + backward; (output, input grad, param grads) as float64 on the CPU."""
    x = target.inputs(x).requires_grad_(True)
    norm.zero_grad(set_to_none=True)
    with torch.autocast(target.device.type, dtype=torch.bfloat16, enabled=target.autocast):
        y = norm(x, pad.to(target.device))
    outputs, grads = [y], [grad_out.to(device=target.device, dtype=y.dtype)]
    penalty = norm.penalty()
    if penalty is not None:
        outputs.append(penalty)
        grads.append(torch.ones_like(penalty))
    torch.autograd.backward(outputs, grads)
    params = [torch.zeros_like(p) if p.grad is None else p.grad for p in norm.parameters()]
    return y.detach().double().cpu(), x.grad.double().cpu(), [g.double().cpu() for g in params]


def norm_trace(norm, shape, target: Target, round_to_bf16: bool = False) -> dict[str, list[torch.Tensor]]:
    """What the equality section compares for one copy of a norm: three training steps (output, input
    and parameter gradients), the floating buffers after them, and one inference forward.
    ``round_to_bf16``: the inputs rounded to bf16 first (the reference of a bf16 target)."""

    def given(seed):
        x, pad = padded_batch(shape, seed)
        return (x.to(torch.bfloat16).double() if round_to_bf16 else x), pad

    norm = norm.to(device=target.device, dtype=target.module_dtype).train()
    trace = {"forward": [], "backward_input": [], "backward_params": []}
    for step in range(3):
        x, pad = given(step)
        grad_out = torch.randn(shape, generator=torch.Generator().manual_seed(100 + step), dtype=torch.float64)
        if round_to_bf16:
            grad_out = grad_out.to(torch.bfloat16).double()
        y, gx, gp = _step(norm, x, pad, grad_out, target)
        trace["forward"].append(y)
        trace["backward_input"].append(gx)
        trace["backward_params"].extend(gp)
    trace["running_stats"] = [b.detach().double().cpu() for b in norm.buffers() if b.is_floating_point()]
    norm.eval()
    x, pad = given(9)
    with torch.no_grad(), torch.autocast(target.device.type, dtype=torch.bfloat16, enabled=target.autocast):
        trace["eval_forward"] = [norm(target.inputs(x), pad.to(target.device)).double().cpu()]
    return trace


def max_rel_error(got: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    """Largest |got - ref| over all the tensors of a quantity, over their largest |ref| (a scalar
    gradient that sums to nearly zero is not held to a relative error of its own)."""
    if not ref:
        return 0.0
    got_flat, ref_flat = (torch.cat([t.flatten() for t in ts]) for ts in (got, ref))
    diff, scale = float((got_flat - ref_flat).abs().max()), float(ref_flat.abs().max())
    return diff / scale if scale > 0 else diff


def compare(trace: dict, reference: dict) -> dict[str, float]:
    return {q: max_rel_error(trace[q], reference[q]) for q in reference}


def equality(shape, device: torch.device) -> list[dict]:
    """Every norm on every target against the float64 CPU reference (and CUDA fp32 against CPU fp32)."""
    targets = {"cpu/fp32": Target(torch.device("cpu"), torch.float32, torch.float32)}
    if device.type == "cuda":
        targets["cuda/fp32"] = Target(device, torch.float32, torch.float32)
    targets[f"{device.type}/bf16"] = Target(device, torch.bfloat16, torch.float32, autocast=True)
    rows = []
    for name in NORMS:
        torch.manual_seed(0)
        initial = build_norm(name, shape[-1], **NORM_OPTIONS.get(name, {}))
        with torch.no_grad():  # non-trivial affine parameters, so a misplaced gain or bias shows
            for p in initial.parameters():
                p.add_(0.1 * torch.randn_like(p))
        reference = norm_trace(copy.deepcopy(initial), shape, REFERENCE)
        rounded = norm_trace(copy.deepcopy(initial), shape, REFERENCE, round_to_bf16=True)
        traces = {}
        for label, target in targets.items():
            bf16 = target.autocast
            traces[label] = norm_trace(copy.deepcopy(initial), shape, target, round_to_bf16=bf16)
            precision = "bf16" if bf16 else "fp32"
            for quantity, err in compare(traces[label], rounded if bf16 else reference).items():
                rows.append(row("equality", norm=name, precision=precision, target=label, quantity=quantity,
                                metric="max_rel_error", value=err, unit="", tolerance=TOLERANCE[precision],
                                passed=err <= TOLERANCE[precision]))
        if "cuda/fp32" in traces:
            for quantity, err in compare(traces["cuda/fp32"], traces["cpu/fp32"]).items():
                rows.append(row("equality", norm=name, precision="fp32", target="cuda-vs-cpu/fp32",
                                quantity=quantity, metric="max_rel_error", value=err, unit="",
                                tolerance=TOLERANCE["fp32"], passed=err <= TOLERANCE["fp32"]))
    return rows


# --- timing of the norms alone --------------------------------------------------------------------


def norm_time(mode: Mode, device: torch.device, rng: np.random.Generator) -> list[dict]:
    """Median fwd+bwd time of each timed norm at ``mode.norm_shape``, fp32 and bf16, as ratios to ln."""
    rows = []
    x64, pad = padded_batch(mode.norm_shape, seed=0)
    pad = pad.to(device)
    for precision in PRECISIONS:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        x = x64.to(device=device, dtype=dtype).requires_grad_(True)
        cases = {}
        for name in TIMED_NORMS:
            torch.manual_seed(0)
            norm = build_norm(name, mode.norm_shape[-1], **NORM_OPTIONS.get(name, {})).to(device).train()
            cases[name] = _fwd_bwd(norm, x, pad, device, precision, mode.time_inner)
        for fn in cases.values():
            for _ in range(mode.time_warmup):
                fn()
        times = {name: [] for name in cases}
        for _ in range(mode.time_repeats):
            for name in rng.permutation(list(cases)):
                sync(device)
                times[name].append(elapsed_ms(cases[name], device) / mode.time_inner)
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name, ms in medians.items():
            common = dict(norm=name, precision=precision, target=device.type, quantity="fwd+bwd")
            rows.append(row("norm_time", **common, metric="median_ms", value=ms, unit="ms"))
            rows.append(row("norm_time", **common, metric="ratio_to_ln", value=ms / medians["ln"], unit="x"))
    return rows


def _fwd_bwd(norm, x, pad, device, precision, inner):
    """``inner`` training forwards + backwards; the upstream gradient has the output's dtype (a norm
    under autocast may return float32 for a bf16 input)."""
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out_dtype = norm(x, pad).dtype
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=out_dtype)

    def run():
        for _ in range(inner):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                y = norm(x, pad)
            penalty = norm.penalty()
            if penalty is None:
                y.backward(grad_out)
            else:
                torch.autograd.backward([y, penalty], [grad_out, torch.ones_like(penalty)])
            x.grad = None
            norm.zero_grad(set_to_none=True)
    return run


# --- the IWSLT14 training step --------------------------------------------------------------------


@functools.cache
def paper_runs() -> dict[str, dict]:
    from normlab import workflow

    return workflow.load_file(ROOT / "config/paper.yaml", ROOT / "workflows/schemas/config.schema.yaml")[2]


def paper_run_config(norm: str, mode: Mode, device: torch.device) -> dict:
    """The paper grid's cell iwslt14_de_en/post/<norm>/seed1, at ``mode``'s sizes, on ``device``."""
    run = copy.deepcopy(paper_runs()[f"iwslt14_de_en/post/{norm}/seed1"])
    run["model"].update(mode.step_model)
    run["train"].update(max_tokens=mode.step_max_tokens, device=device.type)
    run["data"] = {"source": "synthetic"}
    return validate(run)


class Stepper:
    """One training configuration: the engine's model, loss (+ RBN penalty) and AdamW on fixed batches."""

    def __init__(self, cfg: dict, task, batches, device, precision: str, compiled: bool, backend: str):
        torch.manual_seed(cfg["seed"])
        self.model = build_run_model(cfg, task).to(device).train()
        if compiled:  # every Transformer block; embeddings, the loss and the optimizer stay eager
            for block in self.model.modules():
                if isinstance(block, TransformerBlock):
                    block.compile(backend=backend)
        o = cfg["optim"]
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5, betas=tuple(o["betas"]), eps=o["eps"],
                                           weight_decay=o["weight_decay"])
        self.batches, self.device, self.precision = batches, device, precision
        self.smoothing, self.next = o["label_smoothing"], 0

    def step(self) -> None:
        batch = self.batches[self.next % len(self.batches)]
        self.next += 1
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            loss = training_loss(self.model, "translation", batch, self.smoothing)
        total = loss + regularization_loss(self.model, batch.n_targets)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()

    def run(self, n: int):
        return lambda: [self.step() for _ in range(n)]


def train_step(mode: Mode, device: torch.device, rng: np.random.Generator) -> list[dict]:
    task = synthetic_task("translation", seed=0, n_train=max(64, 8 * mode.step_max_tokens // (mode.step_len + 1)),
                          n_valid=2, n_test=2, vocab_size=mode.step_vocab, min_len=mode.step_len,
                          max_len=mode.step_len)
    index = split_batches(task, "train", mode.step_max_tokens, 1, seed=0)
    batches = [collate(task, "train", i).to(device) for i in index[:4]]
    n_targets = statistics.mean(b.n_targets for b in batches)
    n_tokens = statistics.mean(b.n_tokens for b in batches)
    configs = {}
    for norm in STEP_NORMS:
        cfg = paper_run_config(norm, mode, device)
        for precision in PRECISIONS:
            for compiled in (False, True):
                if compiled and (norm, precision) not in mode.compiled:
                    continue
                configs[(norm, precision, compiled)] = Stepper(cfg, task, batches, device, precision, compiled,
                                                               mode.compile_backend)
    for stepper in configs.values():  # warm-up (compilation included)
        stepper.run(mode.step_warmup)()
    sync(device)
    times = {key: [] for key in configs}
    for _ in range(mode.step_rounds):
        for i in rng.permutation(len(configs)):
            key = list(configs)[i]
            times[key].append(elapsed_ms(configs[key].run(mode.step_steps), device) / mode.step_steps)
    rows, ms = [], {key: statistics.median(t) for key, t in times.items()}
    for (norm, precision, compiled), step_ms in ms.items():
        common = dict(norm=norm, precision=precision, compiled=compiled, target=device.type, quantity="train_step")
        rows.append(row("train_step", **common, metric="ms_per_step", value=step_ms, unit="ms"))
        rows.append(row("train_step", **common, metric="target_tokens_per_s", value=n_targets / step_ms * 1e3,
                        unit="tokens/s"))
        rows.append(row("train_step", **common, metric="tokens_per_s", value=n_tokens / step_ms * 1e3,
                        unit="tokens/s"))
        ln = ms.get(("ln", precision, compiled))
        if ln is not None:
            rows.append(row("train_step", **common, metric="ratio_to_ln", value=step_ms / ln, unit="x"))
    return rows


# --- the command ----------------------------------------------------------------------------------


def environment(device: torch.device, mode_name: str, mode: Mode) -> dict:
    return {
        "mode": mode_name,
        "settings": asdict(mode),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,  # False: fp32 is full fp32 (PyTorch's default)
        "tolerance": TOLERANCE,
    }


def summary(rows: list[dict], env: dict) -> str:
    lines = [f"device check ({env['mode']}): {env['device']}, torch {env['torch']}", ""]
    eq = [r for r in rows if r["section"] == "equality"]
    failed = [r for r in eq if not r["passed"]]
    worst = {}
    for r in eq:
        key = (r["target"], r["quantity"])
        worst[key] = max(worst.get(key, 0.0), r["value"])
    lines += ["| equality: target | quantity | worst max_rel_error over norms | tolerance |", "|---|---|---|---|"]
    for (target, quantity), value in worst.items():
        tol = TOLERANCE["bf16" if target.endswith("bf16") else "fp32"]
        lines.append(f"| {target} | {quantity} | {value:.2e} | {tol:g} |")
    lines.append("")
    lines.append("all equality checks passed" if not failed else
                 "FAILED: " + "; ".join(f"{r['norm']} {r['target']} {r['quantity']} {r['value']:.2e}" for r in failed))
    for section, metric in (("norm_time", "ratio_to_ln"), ("train_step", "target_tokens_per_s")):
        sel = [r for r in rows if r["section"] == section and r["metric"] == metric]
        if not sel:
            continue
        lines += ["", f"| {section} | precision | compiled | {metric} |", "|---|---|---|---|"]
        lines += [f"| {r['norm']} | {r['precision']} | {r['compiled']} | {r['value']:.3g} |" for r in sel]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for device_check.csv and .json")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_true", help="every path once, fewer repeats (<= 1.5 min on a GPU)")
    size.add_argument("--tiny", action="store_true", help="toy sizes on the CPU (seconds; what the test runs)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available (--tiny: always the CPU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled timing order")
    args = parser.parse_args(argv)
    mode_name = "tiny" if args.tiny else "short" if args.short else "full"
    mode = MODES[mode_name]
    if args.tiny or args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available()):
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    else:
        device = torch.device("cuda", 0)
    if device.type == "cpu" and not args.tiny:
        print("device check: no GPU here; the timings are CPU timings (use --tiny for the quick CPU run)",
              file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    env = environment(device, mode_name, mode)
    started = time.perf_counter()
    rows = []
    for name, section in (("equality", lambda: equality(mode.norm_shape, device)),
                          ("norm_time", lambda: norm_time(mode, device, rng)),
                          ("train_step", lambda: train_step(mode, device, rng))):
        t0 = time.perf_counter()
        rows += section()
        env[f"{name}_s"] = round(time.perf_counter() - t0, 2)
        print(f"device check: {name} done in {env[f'{name}_s']:.1f} s", file=sys.stderr, flush=True)
    env["wall_s"] = round(time.perf_counter() - started, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "device_check.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "device_check.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    print(summary(rows, env))
    print(f"\nwrote {args.out / 'device_check.csv'} ({len(rows)} rows) in {env['wall_s']:.0f} s")
    return 0 if all(r["passed"] for r in rows if r["section"] == "equality") else 1


if __name__ == "__main__":
    sys.exit(main())
