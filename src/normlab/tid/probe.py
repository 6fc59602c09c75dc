"""``normlab probe``: the TID decomposition and the layer-wise conditioning of one finished run.

    normlab probe --run RUN_DIR --out PROBE_DIR [--mode train|eval] [--batches K] [--cache DATA_CACHE]
                  [--threads N] [--population-tokens N] [--reservoir-tokens R] [--device D] [--seed S]

The run's final weights (``checkpoints/last.pt``, with the running statistics training left) are
loaded into the model its ``config.yaml`` builds, on the task data the engine loads, and run
:func:`normlab.tid.frozen`: no gradient, no parameter update, no running-statistic update.
Output (``docs/analysis_contract.md`` §3): ``tid_decomposition.jsonl``, ``conditioning.jsonl`` and
``probe.json``.

**Mode.**  ``--mode train`` (the default) runs every forward as training ran it: dropout on (from a
generator seeded with ``--seed``, so a probe is reproducible), every batch-statistics norm on its
batch's statistics without touching its running buffers.  That is what the running statistics were
accumulated from and what the authors log (TID inside training forwards): measured without dropout,
the first layers' batch variances sit systematically below running variances that include dropout's
(measured with dropout 0.3: the first norm's variance TID is 0.22 without dropout, 0.039 with it,
beside a token floor of 0.03; ``docs/analysis_contract.md`` §3).
``--mode eval`` (no dropout) stays available as a labelled variant.  Every record says which
(``probe_mode``).  PowerNorm past its warm-up normalises with its running quadratic mean in training,
and so it does in train mode here (made consistent with training; in eval mode it normalises with the
batch's, as before).

**Why a decomposition.**  At small scale a batch-statistics TID sits near its sampling floor
≈ 1/√tokens: a raw TID means nothing until it is compared with what finite random batches produce.
So, per norm module and kind (``mean_tid``, ``var_tid``, the paper's norm-ratio form of
:func:`normlab.tid.tid_from_statistics`), the probe writes raw components (the ratios between them,
and anything in quadrature, are the statistics step's):

* ``observed``: K real training batches vs the running statistics (the paper's TID, relative to
  ‖σ̂_running‖; batch-statistics norms only);
* ``batch_vs_population``: the same K batches vs the true population statistics μ*, σ*² of the norm's
  input at these weights (one pass over the training set, per-channel float64 sums);
* ``floor_token``: K batches of the same token counts drawn token by token, with replacement, from a
  uniform reservoir of the pass's token features, vs the reservoir's own statistics: pure i.i.d.
  sampling noise, a *lower bound* (tokens of one sentence are not independent).  When the population
  fits the reservoir (``--reservoir-tokens``) the reservoir *is* the population;
* ``floor_sentence``: K batches of *whole training examples* drawn uniformly at random across the
  training set (without replacement within a batch), each filled to the token count of one real batch
  (as close as whole examples allow; ``tokens_per_batch`` says what was reached), through the same
  frozen weights in the same mode, vs μ*, σ*² as ``batch_vs_population`` is.  Random whole sentences
  keep their within-sentence correlation and drop only the batching policy (length bucketing), so what
  ``batch_vs_population`` has above ``floor_sentence`` is what the batching adds.  For images an
  example is an image (its patch tokens are correlated): the floor is random images;
* ``lag``: running statistics vs μ*, σ*² (no batch);
* ``floor_theory``: the mean over the K batches of 1/√n_k, n_k the batch's token count (mean TID only).

Every component but ``observed`` is relative to ‖σ*‖ (``floor_token``: the reservoir's ‖σ‖).
PowerNorm (and PN-V) have no mean: only ``var_tid``, on the quadratic mean, of the group-scaled input
(``BatchStatNorm.stat_features``).  Norms that keep no batch statistics (LN and its family, RMSNorm,
none) get the same components but ``observed`` and ``lag`` for their *input* (``method = shadow``): what
BN would see there.  Rows of a batch-statistics norm carry its running average's ``momentum`` (the
weight of a new batch: BN's ``momentum``, PowerNorm's 1 − ``alpha_fwd``), from which the statistics
step states the running average's own sampling noise.

**Mode of the population pass.**  The features at layer l depend on how the layers below normalise
and on dropout, so the population is defined in the mode of the real batches: the pass runs the
same frozen forwards (train mode: dropout on, each training batch normalised with its own
statistics).  Why: (1) the running statistics are moving averages of exactly these batch statistics,
so ``lag`` measures how far the estimate trails the distribution it estimates, not a mismatch of modes
(a population without dropout would put dropout's variance into the lag); (2) ``observed``,
``batch_vs_population`` and both floors are then statistics of one and the same features, so their
ratios are meaningful; (3) μ* = Σ_b n_b μ_b / Σ_b n_b is exactly the token-weighted mean of the batch
means.  (Population-mode features, normalising upstream with running statistics, would make μ* a
property of the deployed model rather than of training; that gap is claim A1's, measured by the
engine's two evaluations.)

The pass visits the training batches in the order of the run's first epoch (``EpochStream``); the
first K are the "real" batches; with ``--population-tokens`` it stops after that many tokens, which
makes the population a uniform random subset of the (length-bucketed) batches.  The sentence-floor
batches come after the pass and do not enter the population.  A random batch of whole sentences is
padded to its longest sentence, so it may occupy several times the padded size of a bucketed one.

**Conditioning** (claim A9; the method of Huang et al.'s layer-wise conditioning analysis, as the RBN
authors compute it): for each norm module, the condition numbers of a covariance of token features
over the non-pad tokens of the K real batches, for two sites and with or without centring (columns
``site``, ``centred``):

* ``site = output``: the norm's output.  That is the input of the linear layers that follow the norm:
  in Pre-Norm the sub-layer's own projections (``x + Dropout(Sublayer(Norm(x)))``, nothing between
  the norm and them: ``q_proj``/``kv_proj`` of the attention, ``q_proj`` alone for cross-attention,
  ``fc1`` of the FFN); in Post-Norm the next sub-layer's (``Norm(x + Dropout(Sublayer(x)))`` is the
  next sub-layer's ``x``: the FFN's ``fc1`` after ``attn_norm``, the next block's attention
  projections after ``ffn_norm``).  The last norm of a stack feeds the model's head (the tagger's and
  LM's output projection, the classifier's pooling, ViT's first token, the translation decoder's
  cross-attention ``kv_proj``): it is measured the same way, over all its tokens.  The claim uses
  ``site = output, centred = True``;
* ``site = input``: the norm's input (the former measurement, kept as a labelled variant).

``centred = True``: Σ = (XᵀX − n x̄x̄ᵀ)/n, the covariance of the features (Taiyi's ``torch.cov`` form,
divisor n); ``centred = False``: Σ = XᵀX/n, the uncentred second moment the authors' code uses (its
divisor also counts pad rows; here padding is excluded throughout, which changes Cmax by the pad
fraction and not the ratios).  An uncentred second moment is dominated by the features' mean
(λ_max ≈ ‖x̄‖²) and says little about the spread the optimisation sees.  Then s = ascending
eigenvalues (``torch.linalg.eigvalsh``, float64); Cmax = s[-1], C50% = s[-1] / s[C//2],
C80% = s[-1] / s[C//5], the code's indices.
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

import numpy as np
import torch
from torch import nn

from normlab.norms import BatchStatNorm, Norm

from .measures import PROBE_MODES, TID_KINDS, describe_module, frozen, tid_from_statistics

DECOMPOSITION_KINDS = ("mean_tid", "var_tid")
COMPONENTS = ("observed", "batch_vs_population", "floor_token", "floor_sentence", "lag", "floor_theory")
DECOMPOSITION_COLUMNS = ("module", "layer", "position", "kind", "component", "value", "std", "n_batches",
                         "tokens_per_batch", "method", "probe_mode", "momentum", "population_tokens")
CONDITIONING_COLUMNS = ("module", "layer", "position", "site", "centred", "c50", "c80", "cmax", "dim",
                        "n_tokens", "probe_mode")
SITES = ("output", "input")
FILES = ("tid_decomposition.jsonl", "conditioning.jsonl", "probe.json")
DEFAULT_MODE = "train"
DEFAULT_BATCHES = 16
DEFAULT_POPULATION_TOKENS = 1_000_000
DEFAULT_RESERVOIR_TOKENS = 65_536
EXIT_NOT_A_RUN = 2


class NotAFinishedRun(ValueError):
    """The folder given to ``--run`` is not a finished run (``normlab train`` has not completed it)."""


# --- conditioning -------------------------------------------------------------------------------


def condition_numbers(second_moment: torch.Tensor) -> dict[str, float]:
    """Cmax, C50%, C80% of a (C, C) symmetric matrix, as the RBN authors' code computes them."""
    s = torch.linalg.eigvalsh(second_moment.double())  # ascending
    c = s.numel()
    return {"c50": float(s[-1] / s[c // 2]), "c80": float(s[-1] / s[c // 5]), "cmax": float(s[-1])}


@dataclass
class _Moments:
    """Count, Σx and Σxxᵀ (float64) of the token features at one site, for its covariance."""

    count: int = 0
    first: torch.Tensor | float = 0.0
    gram: torch.Tensor | float = 0.0

    def add(self, tokens: torch.Tensor) -> None:
        self.count += tokens.shape[0]
        self.first = self.first + tokens.sum(0)
        self.gram = self.gram + tokens.T @ tokens

    def matrix(self, centred: bool) -> torch.Tensor:
        """(XᵀX − n x̄x̄ᵀ)/n (centred) or XᵀX/n."""
        second = self.gram / self.count
        if not centred:
            return second
        mean = self.first / self.count
        return second - torch.outer(mean, mean)


# --- the passes: what each norm module's input (and output) looks like ----------------------------


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


PASSES = ("real", "population", "sentence")  # the real batches, the rest of the population, the sentence floor


def _non_pad_tokens(x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
    tokens = x.reshape(-1, x.shape[-1])
    return tokens if pad_mask is None else tokens[~pad_mask.reshape(-1)]


def running_momentum(module: Norm) -> float | None:
    """The weight of a new batch in the module's running average; None for a norm that keeps none."""
    if not isinstance(module, BatchStatNorm):
        return None
    if hasattr(module, "momentum"):  # bn, rbn, pn_vanilla
        return float(module.momentum)
    if hasattr(module, "alpha_fwd"):  # powernorm: ψ ← α ψ + (1 − α) ψ_B past its warm-up
        return 1.0 - float(module.alpha_fwd)
    return None


@dataclass
class _NormRecord:
    """What the passes saw of one norm module.

    Population sums (the real and population passes), per-batch sums of the real and the sentence
    batches, a token reservoir for the i.i.d. floor, and the conditioning moments of the real batches'
    input and output.
    """

    module: Norm
    reservoir: _Reservoir
    count: int = 0
    first: torch.Tensor | float = 0.0  # Σ x, float64
    second: torch.Tensor | float = 0.0  # Σ x², float64
    batches: dict[str, list[tuple[int, torch.Tensor, torch.Tensor]]] = field(
        default_factory=lambda: {"real": [], "sentence": []})
    moments: dict[str, _Moments] = field(default_factory=lambda: {site: _Moments() for site in SITES})

    @property
    def method(self) -> str:
        return "batch_stats" if isinstance(self.module, BatchStatNorm) else "shadow"

    @property
    def centred(self) -> bool:
        """PowerNorm and PN-V normalise by the quadratic mean (no centring); everything else centres."""
        return not isinstance(self.module, BatchStatNorm) or self.module.tid_statistics()["running_mean"] is not None

    def add_input(self, x: torch.Tensor, pad_mask: torch.Tensor | None, pass_: str) -> None:
        feats = self.module.stat_features(x) if isinstance(self.module, BatchStatNorm) else x.float()
        t64 = _non_pad_tokens(feats, pad_mask).double()
        first, second = t64.sum(0), t64.square().sum(0)
        if pass_ in self.batches:
            self.batches[pass_].append((t64.shape[0], first, second))
        if pass_ == "sentence":
            return  # the sentence floor is compared with the population; it is not part of it
        self.count += t64.shape[0]
        self.first = self.first + first
        self.second = self.second + second
        self.reservoir.add(t64.float())
        if pass_ == "real":
            raw = t64 if feats is x else _non_pad_tokens(x, pad_mask).double()  # bn: its features are x
            self.moments["input"].add(raw)

    def add_output(self, y: torch.Tensor, pad_mask: torch.Tensor | None) -> None:
        self.moments["output"].add(_non_pad_tokens(y, pad_mask).double())

    def batch_statistics(self, pass_: str):
        """(token counts, batch means or None, batch variances or quadratic means) of a pass's batches."""
        rows = self.batches[pass_]
        counts = torch.tensor([n for n, _, _ in rows], dtype=torch.float64)
        first = torch.stack([f for _, f, _ in rows])
        second = torch.stack([s for _, _, s in rows])
        return (counts, *_statistics(first, second, counts.to(first.device)[:, None], self.centred))

    def population(self):
        return _statistics(self.first, self.second, self.count, self.centred)


class NormRecorder:
    """Hooks on every norm module of a model: each call adds the norm's input (and output) to its record.

    ``passing(name)`` says which pass the forwards belong to (:data:`PASSES`): the real batches (kept per
    batch, in the population, and the conditioning moments of input and output), the rest of the
    population (population sums only), or the sentence floor (kept per batch, outside the population).
    """

    def __init__(self, model: nn.Module, reservoir_tokens: int, generator: torch.Generator):
        self.records = {
            name: _NormRecord(m, _Reservoir(reservoir_tokens, generator))
            for name, m in model.named_modules()
            if isinstance(m, Norm)
        }
        self.pass_ = "population"
        self._handles: list[Any] = []

    def _pre_hook(self, name: str):
        def hook(module, args, kwargs):
            pad_mask = args[1] if len(args) > 1 else kwargs.get("pad_mask")
            self.records[name].add_input(args[0].detach(), pad_mask, self.pass_)

        return hook

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            if self.pass_ == "real":
                pad_mask = args[1] if len(args) > 1 else kwargs.get("pad_mask")
                self.records[name].add_output(output.detach(), pad_mask)

        return hook

    @contextlib.contextmanager
    def attached(self) -> Iterator[NormRecorder]:
        for name, rec in self.records.items():
            self._handles.append(rec.module.register_forward_pre_hook(self._pre_hook(name), with_kwargs=True))
            self._handles.append(rec.module.register_forward_hook(self._hook(name), with_kwargs=True))
        try:
            yield self
        finally:
            for h in self._handles:
                h.remove()
            self._handles.clear()

    @contextlib.contextmanager
    def passing(self, pass_: str) -> Iterator[None]:
        if pass_ not in PASSES:
            raise ValueError(f"pass must be one of {PASSES}; got {pass_!r}")
        previous, self.pass_ = self.pass_, pass_
        try:
            yield
        finally:
            self.pass_ = previous


# --- the decomposition ----------------------------------------------------------------------------


@dataclass
class Decomposition:
    tid: list[dict]
    conditioning: list[dict]
    n_batches: int
    n_sentence_batches: int
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


def _token_floor(rec: _NormRecord, counts: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """i.i.d. draws of each real batch's token count from the reservoir, vs the reservoir's statistics."""
    pool = rec.reservoir.sample().double()
    ref_mean, ref_var = _statistics(pool.sum(0), pool.square().sum(0), pool.shape[0], rec.centred)
    sizes = counts.long().to(pool.device)
    draw = pool[torch.randint(pool.shape[0], (int(sizes.sum()),), generator=generator, device=pool.device)]
    which = torch.repeat_interleave(torch.arange(len(sizes), device=pool.device), sizes)  # batch of each draw
    sums = pool.new_zeros(2, len(sizes), pool.shape[1])
    sums[0].index_add_(0, which, draw)
    sums[1].index_add_(0, which, draw.square())
    m, v = _statistics(sums[0], sums[1], sizes[:, None].double(), rec.centred)
    return _kind_values(tid_from_statistics(m, v, ref_mean, ref_var).cpu())


def _module_records(name: str, rec: _NormRecord, generator: torch.Generator, mode: str) -> list[dict]:
    counts, batch_mean, batch_var = rec.batch_statistics("real")
    pop_mean, pop_var = rec.population()
    real_vs_pop = _kind_values(tid_from_statistics(batch_mean, batch_var, pop_mean, pop_var).cpu())
    floor_token = _token_floor(rec, counts, generator)
    sentence = None
    if rec.batches["sentence"]:
        s_counts, s_mean, s_var = rec.batch_statistics("sentence")
        sentence = s_counts, _kind_values(tid_from_statistics(s_mean, s_var, pop_mean, pop_var).cpu())
    observed = lag = None
    if rec.method == "batch_stats":
        st = rec.module.tid_statistics()
        run_mean = st["running_mean"].double() if rec.centred else None
        run_var = st["running_var"].double()
        observed = _kind_values(tid_from_statistics(batch_mean, batch_var, run_mean, run_var).cpu())
        lag = _kind_values(tid_from_statistics(run_mean, run_var, pop_mean, pop_var).cpu())

    layer, position = describe_module(name)
    common = dict(module=name, layer=layer, position=position, method=rec.method, probe_mode=mode,
                  momentum=running_momentum(rec.module), population_tokens=rec.count)
    real_cols = dict(n_batches=len(counts), tokens_per_batch=float(counts.mean()))
    rows = []

    def add(kind, component, value, std, **cols):
        rows.append(common | dict(kind=kind, component=component, value=value, std=std) | cols)

    for kind in real_vs_pop:
        if observed is not None:
            add(kind, "observed", *_summary(observed[kind]), **real_cols)
        add(kind, "batch_vs_population", *_summary(real_vs_pop[kind]), **real_cols)
        add(kind, "floor_token", *_summary(floor_token[kind]), **real_cols)
        if sentence is not None:
            s_counts, s_values = sentence
            add(kind, "floor_sentence", *_summary(s_values[kind]), n_batches=len(s_counts),
                tokens_per_batch=float(s_counts.mean()))
        if lag is not None:
            add(kind, "lag", float(lag[kind]), None, n_batches=0, tokens_per_batch=None)
        if kind == "mean_tid":
            add(kind, "floor_theory", *_summary(counts.rsqrt()), **real_cols)
    return rows


def _conditioning_records(name: str, rec: _NormRecord, mode: str) -> list[dict]:
    layer, position = describe_module(name)
    rows = []
    for site in SITES:
        moments = rec.moments[site]
        for centred in (True, False):
            rows.append(dict(module=name, layer=layer, position=position, site=site, centred=centred,
                             **condition_numbers(moments.matrix(centred)), dim=rec.module.dim,
                             n_tokens=moments.count, probe_mode=mode))
    return rows


def decompose(
    model: nn.Module,
    run_batch: Callable[[Any], Any],
    real_batches: Iterable[Any],
    population_batches: Iterable[Any],
    sentence_batches: Iterable[Any] = (),
    *,
    mode: str = DEFAULT_MODE,
    reservoir_tokens: int = DEFAULT_RESERVOIR_TOKENS,
    seed: int = 0,
) -> Decomposition:
    """TID decomposition and conditioning of every norm module of ``model`` (see the module docstring).

    ``run_batch(batch)`` runs the model's forward on one batch.  ``real_batches`` are the K real
    training batches; the population is those plus ``population_batches``; ``sentence_batches`` are the
    random whole-example batches of the sentence floor (none: no ``floor_sentence`` rows).  Every
    forward runs :func:`normlab.tid.frozen` in ``mode``, in this order (the dropout masks follow from
    ``seed``).  Returns tidy records (``docs/analysis_contract.md`` §3).
    """
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    generator = torch.Generator(device=device).manual_seed(seed)
    recorder = NormRecorder(model, reservoir_tokens, generator)
    with recorder.attached(), frozen(model, mode, seed):
        for pass_, batches in zip(PASSES, (real_batches, population_batches, sentence_batches), strict=True):
            with recorder.passing(pass_):
                for batch in batches:
                    run_batch(batch)
    seen = {name: rec for name, rec in recorder.records.items() if rec.batches["real"]}
    n_batches = max((len(r.batches["real"]) for r in seen.values()), default=0)
    if n_batches == 0:
        return Decomposition([], [], 0, 0, {})
    tid_rows, cond_rows = [], []
    for name, rec in seen.items():
        tid_rows += _module_records(name, rec, generator, mode)
        cond_rows += _conditioning_records(name, rec, mode)
    n_sentence = max(len(r.batches["sentence"]) for r in seen.values())
    population = {name: rec.count for name, rec in seen.items()}
    return Decomposition(tid_rows, cond_rows, n_batches, n_sentence, population)


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
    from normlab.atomic import atomic_write
    from normlab.train.checkpoint import json_safe, write_json

    def jsonl(records):
        text = "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in records)
        return lambda f: f.write(text.encode())

    atomic_write(out / FILES[0], jsonl(tid))
    atomic_write(out / FILES[1], jsonl(cond))
    write_json(out / FILES[2], summary)  # last: its presence marks a complete probe


def sentence_batches(task, train_batches: list[np.ndarray], token_counts: list[int], seed: int):
    """Batches of whole training examples drawn uniformly at random, one per entry of ``token_counts``.

    Each batch takes examples in the order of a fresh random permutation of the training set (so no
    example twice in a batch) until its non-pad token count (``Batch.n_tokens``, the engine's count)
    is as close to the target as whole examples allow; the examples are those of the run's training
    batches.  Yields collated batches (the one use of the engine's batching).
    """
    from normlab.train.batching import collate

    examples = np.concatenate(train_batches)
    rng = np.random.default_rng(seed)
    for target in token_counts:
        chosen, total = [], 0
        for index in rng.permutation(examples):
            n = collate(task, "train", np.asarray([index])).n_tokens
            over = total + n - target
            if over > 0 and chosen and over >= target - total:
                break  # adding it would land further from the target than stopping here
            chosen.append(index)
            total += n
            if total >= target:
                break
        yield collate(task, "train", np.asarray(chosen))


def probe_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    mode: str = DEFAULT_MODE,
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
    if mode not in PROBE_MODES:
        raise ValueError(f"probe mode must be one of {PROBE_MODES}; got {mode!r}")
    start = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out_dir)
    final = _read_run(run_dir)
    summary = dict(run_status=final["status"], steps=final.get("steps"), probe_mode=mode,
                   population_mode="batch_stats", weights="checkpoints/last.pt", seed=seed)
    if final["status"] == "diverged":
        summary |= dict(status="skipped", reason=f"the run diverged at step {final.get('diverged_at_step')}",
                        n_batches=0, tokens_per_batch=None, seconds=time.perf_counter() - start)
        _write_outputs(out, [], [], summary)
        return summary

    from normlab.train import load_run

    run = load_run(run_dir, cache=cache, device=device, threads=threads)
    epoch = run.first_epoch()
    k = min(batches, len(run.batches))
    real = [next(epoch) for _ in range(k)]
    real_tokens = [b.n_tokens for b in real]

    def population():
        seen = sum(real_tokens)
        for batch in epoch:
            if population_tokens and seen >= population_tokens:
                return
            seen += batch.n_tokens
            yield batch

    sentence_tokens: list[int] = []

    def sentences():
        for batch in sentence_batches(run.task, run.batches, real_tokens, seed):
            sentence_tokens.append(batch.n_tokens)
            yield batch.to(run.device)

    result = decompose(run.model, run.forward, real, population(), sentences(), mode=mode,
                       reservoir_tokens=reservoir_tokens, seed=seed)
    summary |= dict(
        status="completed",
        n_batches=result.n_batches,
        tokens_per_batch=sum(real_tokens) / k,
        n_sentence_batches=result.n_sentence_batches,
        sentence_tokens_per_batch=sum(sentence_tokens) / max(len(sentence_tokens), 1),
        population_tokens=max(result.population_tokens.values(), default=0),
        population_tokens_cap=population_tokens,
        reservoir_tokens=reservoir_tokens,
        device=str(run.device),
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
    parser.add_argument("--mode", choices=PROBE_MODES, default=DEFAULT_MODE,
                        help="train: forwards as in training, dropout on (default); eval: no dropout. "
                        "Either way no parameter or running-statistic update")
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
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the dropout masks, the reservoir, the i.i.d. draws and the random sentences")


def run(args: argparse.Namespace) -> int:
    try:  # NotAFinishedRun and ConfigError end in normlab.cli's handler (one line, exit 2)
        summary = probe_run(
            args.run, args.out, mode=args.mode, batches=args.batches, cache=args.cache,
            population_tokens=args.population_tokens, reservoir_tokens=args.reservoir_tokens,
            device=args.device, seed=args.seed, threads=args.threads,
        )
    except FileNotFoundError as err:
        print(f"normlab probe: {err}", file=sys.stderr)
        return EXIT_NOT_A_RUN
    print(f"normlab probe: {summary['status']} ({summary['run_status']} run, {args.mode} mode) -> {args.out}",
          file=sys.stderr)
    return 0
