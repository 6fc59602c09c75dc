"""``normlab probe``: the TID decomposition and the layer-wise conditioning of one finished run.

    normlab probe --run RUN_DIR --out PROBE_DIR [--batches K] [--cache DATA_CACHE] [--threads N]
                  [--population-tokens N] [--reservoir-tokens R] [--device D] [--seed S]

The run's final weights (``checkpoints/last.pt``, with the running statistics training left) are
loaded into the model its ``config.yaml`` builds, on the task data the engine loads, and frozen (eval
mode: no dropout, no running-statistic update).  Output (``docs/analysis_contract.md`` §3):
``tid_decomposition.jsonl``, ``conditioning.jsonl`` and ``probe.json``.

**Why a decomposition.**  At small scale a batch-statistics TID sits at the sampling floor
≈ 1/√tokens (``tid_probe.md``): a raw TID means nothing until it is compared with what finite
batches of i.i.d. tokens produce.  So, per norm module and kind (``mean_tid``, ``var_tid``, the
paper's norm-ratio form of :func:`normlab.tid.tid_from_statistics`):

* ``observed``: K real training batches vs the running statistics (:func:`normlab.tid.probe_tid`);
* ``batch_vs_population``: the same K batches vs the true population statistics μ*, σ*² of the norm's
  input at these weights (one pass over the training set, per-channel float64 sums);
* ``floor``: K i.i.d. batches of the same token counts, drawn token by token, with replacement, from
  a uniform reservoir of the pass's token features, vs the reservoir's own statistics.  The reference
  is the distribution the draw comes from, so the floor is pure sampling noise; when the population
  fits the reservoir (``--reservoir-tokens``) the reservoir *is* the population and the reference is
  μ*, σ*² exactly.  (Against μ* a subsample reservoir would add its own error, √(1 + N/R) in the floor);
* ``structure`` = batch_vs_population − floor (the excess from batch structure: correlated tokens of a
  sentence, length bucketing);  ``lag``: running statistics vs μ*, σ*² (no batch);
* ``floor_theory``: the mean over the K batches of 1/√n_k, n_k the batch's token count (mean TID only).

``structure`` can be negative: in batch-statistics mode the norms below re-centre every batch on its
own mean, so a deeper norm's batch means vary less than those of i.i.d. tokens.

Every component but ``observed`` is relative to ‖σ*‖ (``observed`` keeps the paper's ‖σ̂_running‖).
PowerNorm (and PN-V) have no mean: only ``var_tid``, on the quadratic mean, of the group-scaled input
(``BatchStatNorm.stat_features``).  Norms that keep no batch statistics (LN and its family, RMSNorm,
none) get the same floor / batch_vs_population / structure for their *input* (``method = shadow``):
what BN would see there.

**Normalisation mode of the population pass.**  The features at layer l depend on how the layers
below normalise, so the population is defined in one mode: the pass runs exactly as the ``observed``
probe does, in eval mode under :func:`normlab.norms.batch_stats_inference`: every batch-statistics
norm normalises each of the engine's training batches with that batch's own statistics, as in
training.  Why: (1) the running statistics are moving averages of exactly these batch statistics
(upstream layers in batch mode), so ``lag`` measures how far the estimate trails the distribution it
estimates, not a mismatch of modes; (2) ``observed``, ``batch_vs_population`` and ``floor`` are then
statistics of one and the same set of features, so their differences are meaningful;
(3) μ* = Σ_b n_b μ_b / Σ_b n_b is then exactly the token-weighted mean of the batch means.
(Population-mode features, i.e. normalising upstream with running statistics, would make μ* a property
of the deployed model rather than of training; the gap between the two is claim A1's, measured by the
engine's two evaluations.)  Exception: PowerNorm past its warm-up normalises with its running
statistic in training, while the batch-statistics mode uses the batch's (as ``probe_tid`` does).

The pass visits the training batches in the order of the run's first epoch (``EpochStream``); the
first K are the "real" batches; with ``--population-tokens`` it stops after that many tokens, which
makes the population a uniform random subset of the (length-bucketed) batches.

**Conditioning** (claim A9; definition in ``paper_tid_rbn.md`` §2.5, the authors' code): for each norm
module, Σ = XᵀX / n, the *uncentred* second-moment matrix of its input features X over the non-pad
tokens of the K real batches (the code's divisor also counts pad rows; here padding is excluded
throughout, which changes Cmax by the pad fraction and not the ratios); s = ascending eigenvalues
(``torch.linalg.eigvalsh``, float64); Cmax = s[-1], C50% = s[-1] / s[C//2], C80% = s[-1] / s[C//5],
the code's indices.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normlab.norms import BatchStatNorm, Norm, batch_stat_norms, batch_stats_inference
from normlab.tid import TID_KINDS, describe_module, probe_tid, tid_from_statistics

DECOMPOSITION_KINDS = ("mean_tid", "var_tid")
FILES = ("tid_decomposition.jsonl", "conditioning.jsonl", "probe.json")
DEFAULT_BATCHES = 16
DEFAULT_POPULATION_TOKENS = 1_000_000
DEFAULT_RESERVOIR_TOKENS = 65_536
EXIT_NOT_A_RUN = 2


class NotAFinishedRun(ValueError):
    """The folder given to ``--run`` is not a finished run (``normlab train`` has not completed it)."""


# --- conditioning -------------------------------------------------------------------------------


def condition_numbers(second_moment: torch.Tensor) -> dict[str, float]:
    """Cmax, C50%, C80% of a (C, C) symmetric matrix, as the RBN authors' code (``paper_tid_rbn.md`` §2.5)."""
    s = torch.linalg.eigvalsh(second_moment.double())  # ascending
    c = s.numel()
    return {"c50": float(s[-1] / s[c // 2]), "c80": float(s[-1] / s[c // 5]), "cmax": float(s[-1])}


# --- one pass: what each norm module's input looks like -------------------------------------------


class _Reservoir:
    """A uniform random subsample of at most ``size`` rows of a stream (smallest random keys win).

    Rows whose key is above the current size-th smallest can never enter, so after the reservoir fills
    only a shrinking fraction of each batch is kept as candidates; they are merged (one top-k) when as
    many have piled up as the reservoir holds, so the cost stays linear in the candidates.
    """

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.generator = size, generator
        self.keys: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None
        self.threshold = math.inf
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._n_pending = 0

    def add(self, rows: torch.Tensor) -> None:
        keys = torch.rand(rows.shape[0], generator=self.generator, device=rows.device)
        if self.threshold < math.inf:
            keep = keys < self.threshold
            keys, rows = keys[keep], rows[keep]
        self._pending.append((keys, rows))
        self._n_pending += rows.shape[0]
        if self._n_pending >= self.size:
            self._merge()

    def _merge(self) -> None:
        parts = self._pending if self.keys is None else [(self.keys, self.rows), *self._pending]
        keys = torch.cat([k for k, _ in parts])
        rows = torch.cat([r for _, r in parts])
        if keys.numel() > self.size:
            kept = torch.topk(keys, self.size, largest=False).indices
            keys, rows = keys[kept], rows[kept]
            self.threshold = float(keys.max())
        self.keys, self.rows = keys, rows
        self._pending, self._n_pending = [], 0

    def sample(self) -> torch.Tensor:
        if self._pending:
            self._merge()
        return self.rows


def _statistics(first: torch.Tensor, second: torch.Tensor, count, centred: bool):
    """(mean, variance) from token sums (centred), or (None, quadratic mean) (PowerNorm)."""
    mean, square = first / count, second / count
    if not centred:
        return None, square
    return mean, (square - mean.square()).clamp_min(0.0)


@dataclass
class _NormInput:
    """Sums, per-batch sums, second moments and a token reservoir of one norm module's input."""

    module: Norm
    reservoir: _Reservoir
    count: int = 0
    first: torch.Tensor | float = 0.0  # Σ x, float64
    second: torch.Tensor | float = 0.0  # Σ x², float64
    batches: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    gram: torch.Tensor | float = 0.0  # Σ x xᵀ of the raw input over the real batches, float64
    gram_count: int = 0

    @property
    def method(self) -> str:
        return "batch_stats" if isinstance(self.module, BatchStatNorm) else "shadow"

    @property
    def centred(self) -> bool:
        """PowerNorm and PN-V normalise by the quadratic mean (no centring); everything else centres."""
        return not isinstance(self.module, BatchStatNorm) or self.module.tid_statistics()["running_mean"] is not None

    def add(self, x: torch.Tensor, pad_mask: torch.Tensor | None, real: bool) -> None:
        feats = self.module.stat_features(x) if isinstance(self.module, BatchStatNorm) else x.float()
        keep = None if pad_mask is None else ~pad_mask.reshape(-1)
        tokens = feats.reshape(-1, feats.shape[-1])
        tokens = tokens if keep is None else tokens[keep]
        t64 = tokens.double()
        first, second = t64.sum(0), t64.square().sum(0)
        self.count += tokens.shape[0]
        self.first = self.first + first
        self.second = self.second + second
        self.reservoir.add(tokens.float())
        if real:
            self.batches.append((tokens.shape[0], first, second))
            if feats is x:  # BN, RBN: the statistics are of the input itself
                raw = t64
            else:
                raw = x.reshape(-1, x.shape[-1]).double()
                raw = raw if keep is None else raw[keep]
            self.gram = self.gram + raw.T @ raw
            self.gram_count += raw.shape[0]

    def population(self):
        return _statistics(self.first, self.second, self.count, self.centred)


class NormInputRecorder:
    """Forward pre-hooks on every norm module of a model: each call adds the norm's input to its record.

    Within ``real_batches()`` the calls are also kept per batch (the K real batches of the decomposition
    and the tokens of the conditioning covariance); outside, they only add to the population.
    """

    def __init__(self, model: nn.Module, reservoir_tokens: int, generator: torch.Generator):
        self.inputs = {
            name: _NormInput(m, _Reservoir(reservoir_tokens, generator))
            for name, m in model.named_modules()
            if isinstance(m, Norm)
        }
        self.real = False
        self._handles: list[Any] = []

    def _hook(self, name: str):
        def hook(module, args, kwargs):
            pad_mask = args[1] if len(args) > 1 else kwargs.get("pad_mask")
            self.inputs[name].add(args[0].detach(), pad_mask, self.real)

        return hook

    @contextlib.contextmanager
    def attached(self) -> Iterator[NormInputRecorder]:
        for name, rec in self.inputs.items():
            self._handles.append(rec.module.register_forward_pre_hook(self._hook(name), with_kwargs=True))
        try:
            yield self
        finally:
            for h in self._handles:
                h.remove()
            self._handles.clear()

    @contextlib.contextmanager
    def real_batches(self) -> Iterator[None]:
        self.real = True
        try:
            yield
        finally:
            self.real = False


@contextlib.contextmanager
def frozen_batch_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, no running update), batch-statistics norms on their batch's statistics."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), batch_stats_inference(model):
            yield
    finally:
        model.train(was_training)


# --- the decomposition ----------------------------------------------------------------------------


@dataclass
class Decomposition:
    tid: list[dict]
    conditioning: list[dict]
    n_batches: int
    population_tokens: dict[str, int]


def _kind_values(tids: torch.Tensor) -> dict[str, torch.Tensor]:
    """(..., 4) TIDs in TID_KINDS order -> the decomposition kinds that are defined (not NaN)."""
    out = {}
    for kind in DECOMPOSITION_KINDS:
        v = tids[..., TID_KINDS.index(kind)]
        if not torch.isnan(v).all():
            out[kind] = v
    return out


def _summary(per_batch: torch.Tensor) -> tuple[float, float | None]:
    """Mean over batches, and the sample std across them (None with a single batch)."""
    std = float(per_batch.std(correction=1)) if per_batch.numel() > 1 else None
    return float(per_batch.mean()), std


def _module_records(name: str, rec: _NormInput, observed: dict, generator: torch.Generator) -> list[dict]:
    counts = torch.tensor([n for n, _, _ in rec.batches], dtype=torch.float64)
    first = torch.stack([f for _, f, _ in rec.batches])
    second = torch.stack([s for _, _, s in rec.batches])
    centred = rec.centred
    pop_mean, pop_var = rec.population()
    batch_mean, batch_var = _statistics(first, second, counts.to(first.device)[:, None], centred)
    real_vs_pop = _kind_values(tid_from_statistics(batch_mean, batch_var, pop_mean, pop_var).cpu())

    # the floor: i.i.d. draws of each real batch's token count from the reservoir, vs the reservoir
    pool = rec.reservoir.sample().double()
    ref_mean, ref_var = _statistics(pool.sum(0), pool.square().sum(0), pool.shape[0], centred)
    sizes = counts.long().to(pool.device)
    draw = pool[torch.randint(pool.shape[0], (int(sizes.sum()),), generator=generator, device=pool.device)]
    which = torch.repeat_interleave(torch.arange(len(sizes), device=pool.device), sizes)  # batch of each draw
    sums = pool.new_zeros(2, len(sizes), pool.shape[1])
    sums[0].index_add_(0, which, draw)
    sums[1].index_add_(0, which, draw.square())
    m, v = _statistics(sums[0], sums[1], sizes[:, None].double(), centred)
    floor = _kind_values(tid_from_statistics(m, v, ref_mean, ref_var).cpu())

    layer, position = describe_module(name)
    common = dict(module=name, layer=layer, position=position, method=rec.method, population_tokens=rec.count)
    batch_cols = dict(n_batches=len(counts), tokens_per_batch=float(counts.mean()))
    rows = []

    def add(kind, component, value, std, **cols):
        rows.append(common | dict(kind=kind, component=component, value=value, std=std) | cols)

    for kind in real_vs_pop:
        if rec.method == "batch_stats" and (name, kind) in observed:
            o = observed[name, kind]
            add(kind, "observed", o["value"], o.get("std") if o["n_batches"] > 1 else None, **batch_cols)
        add(kind, "floor", *_summary(floor[kind]), **batch_cols)
        add(kind, "batch_vs_population", *_summary(real_vs_pop[kind]), **batch_cols)
        add(kind, "structure", *_summary(real_vs_pop[kind] - floor[kind]), **batch_cols)
        if rec.method == "batch_stats":
            st = rec.module.tid_statistics()
            run_mean = st["running_mean"].double() if centred else None
            lag = tid_from_statistics(run_mean, st["running_var"].double(), pop_mean, pop_var)
            add(kind, "lag", float(_kind_values(lag.cpu())[kind]), None, n_batches=0, tokens_per_batch=None)
        if kind == "mean_tid":
            add(kind, "floor_theory", *_summary(counts.rsqrt()), **batch_cols)
    return rows


def decompose(
    model: nn.Module,
    run_batch: Callable[[Any], Any],
    real_batches: Iterable[Any],
    population_batches: Iterable[Any],
    *,
    reservoir_tokens: int = DEFAULT_RESERVOIR_TOKENS,
    seed: int = 0,
    step: int | None = None,
) -> Decomposition:
    """TID decomposition and conditioning of every norm module of ``model`` (see the module docstring).

    ``run_batch(batch)`` runs the model's forward on one batch.  ``real_batches`` are the K real
    training batches; the population is those plus ``population_batches`` (one pass, batch-statistics
    mode).  Returns tidy records (``docs/analysis_contract.md`` §3).
    """
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    generator = torch.Generator(device=device).manual_seed(seed)
    recorder = NormInputRecorder(model, reservoir_tokens, generator)
    observed_rows: list[dict] = []
    with recorder.attached(), frozen_batch_mode(model):
        with recorder.real_batches():
            if batch_stat_norms(model):
                # observed TID: the engine's probe, on the same forwards that the recorder sees
                observed_rows = probe_tid(model, real_batches, run_batch, step=step)
            else:
                for batch in real_batches:
                    run_batch(batch)
        for batch in population_batches:
            run_batch(batch)
    observed = {(r["module"], r["kind"]): r for r in observed_rows}
    n_batches = max((len(r.batches) for r in recorder.inputs.values()), default=0)
    tid_rows, cond_rows = [], []
    if n_batches == 0:
        return Decomposition([], [], 0, {})
    for name, rec in recorder.inputs.items():
        tid_rows += _module_records(name, rec, observed, generator)
        layer, position = describe_module(name)
        cond = condition_numbers(rec.gram / rec.gram_count)
        cond_rows.append(dict(module=name, layer=layer, position=position, **cond,
                              dim=rec.module.dim, n_tokens=rec.gram_count))
    population = {name: rec.count for name, rec in recorder.inputs.items()}
    return Decomposition(tid_rows, cond_rows, n_batches, population)


# --- a finished run -------------------------------------------------------------------------------


def _read_run(run_dir: Path) -> dict:
    """final.json of a finished run; raises NotAFinishedRun naming what is missing and what to do."""
    if not run_dir.is_dir():
        raise NotAFinishedRun(f"--run {run_dir} is not a folder; pass a run folder written by `normlab train`")
    missing = [f for f in ("config.yaml", "final.json") if not (run_dir / f).exists()]
    if missing:
        raise NotAFinishedRun(
            f"--run {run_dir} is not a finished run: it has no {' or '.join(missing)} "
            "(final.json is written last; finish the run with `normlab train --config ... --out "
            f"{run_dir} --resume`)"
        )
    final = json.loads((run_dir / "final.json").read_text())
    status = final.get("status")
    if status not in ("completed", "diverged"):
        raise NotAFinishedRun(f"{run_dir / 'final.json'}: status {status!r} is neither 'completed' nor 'diverged'")
    if status == "completed" and not (run_dir / "checkpoints" / "last.pt").exists():
        raise NotAFinishedRun(
            f"{run_dir} is a completed run without checkpoints/last.pt (the final weights the probe needs); "
            "re-train it with `normlab train`"
        )
    return final


def _write_outputs(out: Path, tid: list[dict], cond: list[dict], summary: dict) -> None:
    from normlab.train.checkpoint import atomic_write, json_safe, write_json

    def jsonl(records):
        text = "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in records)
        return lambda f: f.write(text.encode())

    atomic_write(out / FILES[0], jsonl(tid))
    atomic_write(out / FILES[1], jsonl(cond))
    write_json(out / FILES[2], summary)  # last: its presence marks a complete probe


def probe_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    batches: int = DEFAULT_BATCHES,
    cache: str | None = None,
    population_tokens: int = DEFAULT_POPULATION_TOKENS,
    reservoir_tokens: int = DEFAULT_RESERVOIR_TOKENS,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Probe the finished run in ``run_dir`` into ``out_dir``; returns the ``probe.json`` record.

    A diverged run gets empty record files and ``status: skipped``.  Raises :class:`NotAFinishedRun`
    for a folder that is not a finished run.
    """
    from normlab.train import checkpoint as ckpt
    from normlab.train import config as config_mod
    from normlab.train.batching import EpochStream
    from normlab.train.engine import autocast_for, build_run_model, pick_device, train_batches
    from normlab.train.objectives import forward
    from normlab.train.tasks import load_task

    start = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out_dir)
    final = _read_run(run_dir)
    summary = dict(run_status=final["status"], steps=final.get("steps"), population_mode="batch_stats",
                   weights="checkpoints/last.pt")
    if final["status"] == "diverged":
        summary |= dict(status="skipped", reason=f"the run diverged at step {final.get('diverged_at_step')}",
                        n_batches=0, tokens_per_batch=None, seconds=time.perf_counter() - start)
        _write_outputs(out, [], [], summary)
        return summary

    cfg = config_mod.load(run_dir / "config.yaml")
    if cache is not None and cfg["data"]["source"] == "normlab":
        cfg["data"]["options"] = {**cfg["data"].get("options", {}), "cache": str(cache)}
    if threads or cfg["train"]["threads"]:
        torch.set_num_threads(threads or cfg["train"]["threads"])
    dev = pick_device(device, 0)
    task = load_task(cfg["task"], cfg["data"], cfg["seed"])
    model = build_run_model(cfg, task)
    model.load_state_dict(ckpt.load(run_dir / "checkpoints" / "last.pt", "cpu")["model"])
    model.to(dev)
    autocast = autocast_for(dev, cfg["train"]["precision"])

    def run_batch(batch):
        with autocast():
            forward(model, task.family, batch)

    index_batches = train_batches(cfg, task)
    stream = EpochStream(task, index_batches, cfg["seed"])  # the run's first epoch, in its order
    epoch = (next(stream).to(dev) for _ in range(len(index_batches)))
    k = min(batches, len(index_batches))
    real = [next(epoch) for _ in range(k)]
    real_tokens = sum(b.n_tokens for b in real)

    def population():
        seen = real_tokens
        for batch in epoch:
            if population_tokens and seen >= population_tokens:
                return
            seen += batch.n_tokens
            yield batch

    result = decompose(model, run_batch, real, population(), reservoir_tokens=reservoir_tokens,
                       seed=seed, step=final.get("steps"))
    summary |= dict(
        status="completed",
        n_batches=result.n_batches,
        tokens_per_batch=real_tokens / k,
        population_tokens=max(result.population_tokens.values(), default=0),
        population_tokens_cap=population_tokens,
        reservoir_tokens=reservoir_tokens,
        device=str(dev),
        threads=torch.get_num_threads(),
        seconds=time.perf_counter() - start,
    )
    _write_outputs(out, result.tid, result.conditioning, summary)
    return summary


# --- the command ----------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="a finished run folder (written by `normlab train`)")
    parser.add_argument("--out", required=True, help="the probe folder to write (docs/analysis_contract.md §3)")
    parser.add_argument("--batches", type=_positive, default=DEFAULT_BATCHES,
                        help=f"K real training batches for TID and conditioning (default {DEFAULT_BATCHES})")
    parser.add_argument("--cache", help="data cache of a `normlab` data source (default: the run config's, "
                        "else $NORMLAB_DATA, else ./data_cache)")
    parser.add_argument("--threads", type=_positive, help="torch threads (default: the run config's train.threads)")
    parser.add_argument("--population-tokens", type=int, default=DEFAULT_POPULATION_TOKENS,
                        help="stop the population pass after this many training tokens, 0 = the whole "
                        f"training set (default {DEFAULT_POPULATION_TOKENS})")
    parser.add_argument("--reservoir-tokens", type=_positive, default=DEFAULT_RESERVOIR_TOKENS,
                        help="token features kept per norm module for the i.i.d. floor "
                        f"(memory: R x d_model x 4 bytes per module; default {DEFAULT_RESERVOIR_TOKENS})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the reservoir and the i.i.d. draws")


def run(args: argparse.Namespace) -> int:
    try:  # NotAFinishedRun and ConfigError end in normlab.cli's handler (one line, exit 2)
        summary = probe_run(
            args.run, args.out, batches=args.batches, cache=args.cache, population_tokens=args.population_tokens,
            reservoir_tokens=args.reservoir_tokens, device=args.device, seed=args.seed, threads=args.threads,
        )
    except FileNotFoundError as err:
        print(f"normlab probe: {err}", file=sys.stderr)
        return EXIT_NOT_A_RUN
    print(f"normlab probe: {summary['status']} ({summary['run_status']} run) -> {args.out}", file=sys.stderr)
    return 0
