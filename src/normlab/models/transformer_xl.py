"""Transformer-XL language model (Dai et al. 2019): segment recurrence and relative positional attention.

The model the RBN authors' LM base code builds on (``mem_transformer.py`` of Transformer-XL, which the
BTD-Transformer code copies; their ``run_ptb_base.sh`` / ``run_wt103_base.sh`` set its sizes).  What
it does, for a segment of ``Q`` tokens per batch row and a memory of ``M`` cached positions:

* **Memory.**  Each layer caches the last ``mem_len`` positions of what its attention read keys and
  values from, detached (no gradient flows into the memory).  Post-Norm: the layer's input, as
  Transformer-XL.  Pre-Norm: the layer's *normalised* input ``norm(x)``.  Transformer-XL's Pre-Norm
  code instead normalises ``[memory; x]`` again at every step; for LN the two are identical, for BN
  ours keeps the batch statistics over the segment's own tokens, each token counted once [choice].
* **Relative attention.**  score(i, j) = (q_i + u)·k_j + (q_i + v)·W_r r_{i-j}, scaled by 1/√d_head,
  with r the sinusoidal encoding of the distance ``i - j`` (clamped at ``clamp_len``), ``u``/``v``
  shared by all layers, and the "relative shift" done by one pad-and-reshape (no loop).  The
  position-dependent term enters ``F.scaled_dot_product_attention`` as an additive mask, so fused
  kernels apply where the device has them.
* **Masking.**  A query sees the memory and the segment up to itself (``same_length``: only its
  last ``mem_len`` keys, as the authors' eval script); padded keys are hidden; a padded query always
  sees itself, so no row of the softmax is empty.
* **Norms.**  Every sub-layer's residual has the studied norm, Post or Pre exactly as
  :class:`normlab.models.blocks.TransformerBlock`; Pre-Norm adds a final norm (``ModelOptions.final_norm``;
  Transformer-XL's code has none: ``final_norm="none"`` reproduces it).  Norms get the segment's pad
  mask, so BN/RBN/PowerNorm take batch statistics over the segment's real tokens.
* **Dropout** as Transformer-XL: on the scaled embedding, on the relative encodings, on every
  sub-layer output before the residual add, inside the FFN (``activation_dropout``: the scripts use
  the same value as ``dropout``), on the attention probabilities (``attention_dropout``: the scripts'
  ``dropatt``), and on the last hidden state before the softmax.
* **Input/output**: :mod:`normlab.models.adaptive` (adaptive input and softmax for WikiText-103,
  tied; a plain tied embedding and full softmax without cutoffs, as PTB).

Data: a token stream cut into ``batch_size`` equal rows and read in ``tgt_len`` segments
(:func:`stream_segments`), as the scripts' ordered iterator.  Every row of a segment has the same
length: the last, shorter segment is run at its true length, so the stream needs no padding and
``pad_mask`` is None.  ``pad_mask`` is for batches that do pad (right padding at the end of a
stream): a padded position must not be followed by real tokens in a later segment of the same row,
because the memory slots it occupies would shift the relative distances.

Not implemented: ``ext_len`` (the scripts keep it 0), the learnable/absolute ``attn_type`` variants,
sampled softmax, and the BTD-Transformer's tensorised attention (a compression method, not the norm
study; see docs/lm_ner_models.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .adaptive import AdaptiveEmbedding, AdaptiveSoftmax
from .blocks import FeedForward, NormSpec
from .options import ModelOptions


@dataclass(frozen=True)
class XLConfig:
    """What Transformer-XL adds to :class:`ModelOptions` (names as the authors' ``train.py`` flags).

    ``d_head``: None means ``d_model // n_heads`` (the scripts set it: 40 with one head).
    ``tgt_len``/``mem_len``/``eval_tgt_len``: training segment, memory, evaluation segment lengths;
    ``eval_batch_size``: the rows an evaluation cuts a stream into (``train.py`` fixes 10).
    ``clamp_len``: distances above it use its encoding (-1: never).  ``same_length``: every query
    attends to at most ``mem_len`` keys.  ``cutoffs``/``div_val``: adaptive input and softmax (empty:
    full softmax).  ``tie_weight``: output tables tied to the input ones; ``tie_projections``: the tail
    clusters' projections too.  ``init_std``/``proj_init_std``: Transformer-XL's initialisation.
    """

    d_head: int | None = None
    tgt_len: int = 32
    mem_len: int = 32
    eval_tgt_len: int | None = None
    eval_batch_size: int = 10
    clamp_len: int = -1
    same_length: bool = False
    cutoffs: tuple[int, ...] = ()
    div_val: float = 1.0
    tie_weight: bool = True
    tie_projections: bool = True
    init_std: float = 0.02
    proj_init_std: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "cutoffs", tuple(int(c) for c in self.cutoffs))
        for name in ("tgt_len", "mem_len", "eval_tgt_len", "eval_batch_size"):
            value, positive = getattr(self, name), name != "mem_len"
            if value is not None and value < int(positive):
                raise ValueError(f"xl.{name} must be {'positive' if positive else '>= 0'}; got {value}")
        if self.same_length and self.mem_len == 0:
            raise ValueError("xl.same_length needs mem_len > 0 (it limits each query to mem_len keys)")

    @classmethod
    def from_dict(cls, d: dict) -> XLConfig:
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(
                f"unknown Transformer-XL option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
            )
        return cls(**d)

    def evaluation_lengths(self) -> tuple[int, int]:
        """(segment length, memory length) for evaluation, by the scripts' rule.

        The scripts evaluate with ``eval_tgt_len`` and lengthen the memory by what the segment
        lost, ``mem_len + tgt_len - eval_tgt_len``, so memory + segment span what they did in
        training (their alternative for ``mem_len == 0``, a longer
        ``ext_len``, is not implemented).
        """
        eval_tgt = self.eval_tgt_len or self.tgt_len
        if self.mem_len == 0:
            if eval_tgt != self.tgt_len:
                raise ValueError("eval_tgt_len != tgt_len with mem_len == 0 needs ext_len, which is not implemented")
            return eval_tgt, 0
        return eval_tgt, self.mem_len + self.tgt_len - eval_tgt


@dataclass(frozen=True)
class Memory:
    """Per-layer cached states (batch, M, d_model), detached, and their pad mask (batch, M) or None."""

    states: tuple[torch.Tensor, ...]
    pad_mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.states[0].shape[1]


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """(…, Q, K) scores against distances K-1, …, 0 -> scores against key positions.

    ``out[…, i, j] = x[…, i, j + Q - 1 - i]``, i.e. query i (at absolute position K - Q + i) against
    key j at distance K - Q + i - j.  Exact where that distance is >= 0 (the causal part); the rest is
    filler that the causal mask hides.  One zero column, one reshape (Transformer-XL's trick).
    """
    *lead, q, k = x.shape
    padded = F.pad(x, (1, 0)).view(*lead, k + 1, q)
    return padded[..., 1:, :].reshape(*lead, q, k)


def attention_mask(
    q_len: int,
    m_len: int,
    key_pad: torch.Tensor | None,
    device: torch.device,
    window: int | None = None,
) -> torch.Tensor:
    """Boolean "may attend" (batch or 1, 1, Q, M + Q) for queries after ``m_len`` memory positions.

    Key j is visible to query i when 0 <= distance < window (None: unbounded) and the key is not
    padding; a query always sees itself.
    """
    distance = torch.arange(q_len, device=device)[:, None] + m_len - torch.arange(m_len + q_len, device=device)
    allowed = distance >= 0
    if window is not None:
        allowed &= distance < window
    if key_pad is not None:
        allowed = (allowed & ~key_pad[:, None, :]) | (distance == 0)
        return allowed[:, None]
    return allowed[None, None]


class RelativePositions(nn.Module):
    """Sinusoidal encodings of the distances K-1, …, 0 (K, d_model): [sin | cos], as Transformer-XL."""

    def __init__(self, d_model: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d_model, 2.0) / d_model))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, k_len: int, clamp_len: int = -1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        distance = torch.arange(k_len - 1, -1, -1, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        if clamp_len >= 0:
            distance = distance.clamp(max=clamp_len)
        angles = torch.outer(distance, self.inv_freq)
        return torch.cat([angles.sin(), angles.cos()], dim=-1).to(dtype)


class RelativeSelfAttention(nn.Module):
    """Transformer-XL's relative multi-head attention; projections without bias, as the original."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, dropatt: float = 0.0):
        super().__init__()
        self.n_heads, self.d_head, self.dropatt = n_heads, d_head, dropatt
        inner = n_heads * d_head
        self.q_proj = nn.Linear(d_model, inner, bias=False)
        self.kv_proj = nn.Linear(d_model, 2 * inner, bias=False)
        self.r_proj = nn.Linear(d_model, inner, bias=False)
        self.out_proj = nn.Linear(inner, d_model, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H·Dh) -> (B, H, T, Dh)
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        rel: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor,
        allowed: torch.Tensor,
    ) -> torch.Tensor:
        """x (B, Q, D) queries; context (B, K, D) = [memory; x]; rel (K, D) encodings of distances
        K-1…0; u, v (H, Dh); allowed (B or 1, 1, Q, K) boolean.  Returns (B, Q, D)."""
        q = self._heads(self.q_proj(x))
        k, val = (self._heads(t) for t in self.kv_proj(context).chunk(2, dim=-1))
        r = self.r_proj(rel).view(-1, self.n_heads, self.d_head).transpose(0, 1)  # (H, K, Dh)
        position_scores = rel_shift((q + v[:, None]) @ r.transpose(-1, -2)) / math.sqrt(self.d_head)
        bias = position_scores.masked_fill(~allowed, float("-inf"))
        y = F.scaled_dot_product_attention(
            q + u[:, None], k, val, attn_mask=bias, dropout_p=self.dropatt if self.training else 0.0
        )
        b, _, t, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(b, t, -1))


class XLBlock(nn.Module):
    """Relative self-attention + FFN, each a residual sub-layer with its norm (``attn_norm``, ``ffn_norm``).

    Placement as :class:`normlab.models.blocks.TransformerBlock`: Post x = Norm(x + Drop(F(x))),
    Pre x = x + Drop(F(Norm(x))).
    """

    def __init__(self, opts: ModelOptions, d_head: int, norm: NormSpec):
        super().__init__()
        d = opts.d_model
        self.pre_norm = opts.placement == "pre"
        self.attn = RelativeSelfAttention(d, opts.n_heads, d_head, opts.attention_dropout)
        self.attn_norm = norm.build(d)
        self.ffn = FeedForward(d, opts.d_ff, opts.activation, opts.activation_dropout)
        self.ffn_norm = norm.build(d)
        self.drop = nn.Dropout(opts.dropout)

    def _add(self, x, update, norm, pad_mask):
        return x + update if self.pre_norm else norm(x + update, pad_mask)

    def forward(self, x, memory, rel, u, v, allowed, pad_mask):
        """Returns (output, what the attention read) — the latter is this layer's next memory."""
        attn_in = self.attn_norm(x, pad_mask) if self.pre_norm else x
        context = attn_in if memory is None else torch.cat([memory, attn_in], dim=1)
        x = self._add(x, self.drop(self.attn(attn_in, context, rel, u, v, allowed)), self.attn_norm, pad_mask)
        ffn_in = self.ffn_norm(x, pad_mask) if self.pre_norm else x
        x = self._add(x, self.drop(self.ffn(ffn_in)), self.ffn_norm, pad_mask)
        return x, attn_in


class XLDecoder(nn.Module):
    """The stack: ``layers`` of :class:`XLBlock` and, with Pre-Norm, ``final_norm``.

    Named as normlab's other decoders (``decoder.layers.<i>.attn_norm``, ``decoder.final_norm``),
    so TID records and figures label its norms the same way.
    """

    def __init__(self, opts: ModelOptions, d_head: int):
        super().__init__()
        self.layers = nn.ModuleList(XLBlock(opts, d_head, opts.studied_norm()) for _ in range(opts.n_layers))
        self.final_norm = opts.studied_final_norm().build(opts.d_model) if opts.placement == "pre" else None

    def forward(self, x, memory, rel, u, v, allowed, pad_mask):
        """Returns (output, per-layer attention inputs: the next memory before truncation)."""
        read = []
        for i, layer in enumerate(self.layers):
            x, attn_in = layer(x, None if memory is None else memory.states[i], rel, u, v, allowed, pad_mask)
            read.append(attn_in)
        if self.final_norm is not None:
            x = self.final_norm(x, pad_mask)
        return x, read


class TransformerXL(nn.Module):
    """Transformer-XL LM.  ``opts``: sizes, dropout, norm and placement; ``xl``: :class:`XLConfig`.

    ``xl``: None takes ``opts.xl`` (the run config's ``model.xl``, a dict of :class:`XLConfig` fields).
    ``forward(tokens, targets=None, memory=None, pad_mask=None, mem_len=None)`` ->
    ``(out, memory)``: ``out`` is the per-token NLL (B, Q) (0 at padding) when ``targets`` are given,
    else log-probabilities (B, Q, vocab); ``memory`` is the next segment's :class:`Memory` (None when
    ``mem_len`` is 0).  ``mem_len`` overrides ``xl.mem_len`` (evaluation).
    """

    def __init__(self, opts: ModelOptions, vocab_size: int, xl: XLConfig | dict | None = None):
        super().__init__()
        if opts.norm_scope != "all":
            raise ValueError("model.norm_scope must be 'all' for the Transformer-XL LM (it has one stack)")
        xl = opts.xl if xl is None else xl  # the run config's model.xl
        xl = XLConfig.from_dict(xl) if isinstance(xl, dict) else xl
        self.xl, self.vocab_size = xl, vocab_size
        d, d_head = opts.d_model, xl.d_head or opts.d_model // opts.n_heads
        self.embed = AdaptiveEmbedding(vocab_size, d, xl.cutoffs, xl.div_val, xl.init_std, xl.proj_init_std)
        self.positions = RelativePositions(d)
        self.u = nn.Parameter(torch.empty(opts.n_heads, d_head))  # Transformer-XL's r_w_bias
        self.v = nn.Parameter(torch.empty(opts.n_heads, d_head))  # r_r_bias
        self.decoder = XLDecoder(opts, d_head)
        self.drop = nn.Dropout(opts.dropout)
        self.out = AdaptiveSoftmax(
            d,
            vocab_size,
            xl.cutoffs,
            xl.div_val,
            self.embed if xl.tie_weight else None,
            xl.tie_projections,
            xl.init_std,
            xl.proj_init_std,
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """Transformer-XL's: linear weights and u, v ~ N(0, init_std), biases 0 (the adaptive layers
        initialise themselves; the norms keep their own initialisation)."""
        for m in self.decoder.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, self.xl.init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.u, 0.0, self.xl.init_std)
        nn.init.normal_(self.v, 0.0, self.xl.init_std)

    def hidden_states(self, tokens, memory=None, pad_mask=None, mem_len=None):
        """The last hidden states (B, Q, D) after dropout, and the next memory."""
        mem_len = self.xl.mem_len if mem_len is None else mem_len
        if memory is not None and (
            len(memory.states) != len(self.decoder.layers) or memory.states[0].shape[0] != len(tokens)
        ):
            raise ValueError(
                f"memory of {len(memory.states)} layers × batch {memory.states[0].shape[0]} does not fit "
                f"{len(self.decoder.layers)} layers × batch {len(tokens)}; "
                "pass the memory this model returned for this batch"
            )
        q_len, m_len = tokens.shape[1], 0 if memory is None else memory.length
        key_pad = _key_pad(memory, pad_mask, tokens.shape, tokens.device)
        window = mem_len if self.xl.same_length and mem_len > 0 else None
        allowed = attention_mask(q_len, m_len, key_pad, tokens.device, window)
        x = self.drop(self.embed(tokens))
        rel = self.drop(self.positions(m_len + q_len, self.xl.clamp_len, x.dtype))
        x, read = self.decoder(x, memory, rel, self.u, self.v, allowed, pad_mask)
        return self.drop(x), _next_memory(memory, read, key_pad, mem_len)

    def forward(self, tokens, targets=None, memory=None, pad_mask=None, mem_len=None):
        h, new_memory = self.hidden_states(tokens, memory, pad_mask, mem_len)
        b, q, d = h.shape
        if targets is None:
            return self.out.log_prob(h.reshape(b * q, d)).view(b, q, -1), new_memory
        if pad_mask is not None:
            targets = targets.masked_fill(pad_mask, 0)  # any valid id; its loss is zeroed below
        nll = self.out.nll(h.reshape(b * q, d), targets.reshape(-1)).view(b, q)
        if pad_mask is not None:
            nll = nll.masked_fill(pad_mask, 0.0)
        return nll, new_memory


def _key_pad(memory: Memory | None, pad_mask: torch.Tensor | None, shape, device) -> torch.Tensor | None:
    """Pad mask of the keys [memory; segment] (B, M + Q), or None when nothing is padded."""
    mem_pad = None if memory is None else memory.pad_mask
    if mem_pad is None and pad_mask is None:
        return None
    (b, q), m = shape, 0 if memory is None else memory.length
    if mem_pad is None:
        mem_pad = torch.zeros(b, m, dtype=torch.bool, device=device)
    if pad_mask is None:
        pad_mask = torch.zeros(b, q, dtype=torch.bool, device=device)
    return torch.cat([mem_pad, pad_mask], dim=1)


def _next_memory(memory, read, key_pad, mem_len) -> Memory | None:
    """The last ``mem_len`` positions of [memory; this segment] per layer, detached, and their pad mask."""
    if mem_len == 0:
        return None
    if memory is not None:
        read = [torch.cat([m, h], dim=1) for m, h in zip(memory.states, read, strict=True)]
    states = tuple(h[:, -mem_len:].detach() for h in read)
    return Memory(states, None if key_pad is None else key_pad[:, -mem_len:])


def stream_segments(
    stream: torch.Tensor, batch_size: int, tgt_len: int, *, tail: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets), each (batch_size, ≤ tgt_len), over a 1-D token stream, as the scripts cut it.

    The stream is trimmed to a multiple of ``batch_size`` and split into ``batch_size`` contiguous
    rows; segment ``s`` holds positions ``s·tgt_len … s·tgt_len + L - 1`` of every row and its
    targets the positions one later.  ``tail``: the last, shorter segment (L < tgt_len) too, so every
    token but each row's first is a target (``batch_size · (len(stream) // batch_size - 1)`` targets);
    without it only full segments, as the scripts' ``LMOrderedIterator.get_fixlen_iter`` (train and
    evaluation alike), which leaves the last ``(n_step - 1) % tgt_len`` targets of every row out.
    """
    if stream.dim() != 1:
        raise ValueError(f"the token stream must be 1-D; got shape {tuple(stream.shape)}")
    n_step = stream.numel() // batch_size
    if n_step < (2 if tail else tgt_len + 1):
        raise ValueError(f"a stream of {stream.numel()} tokens is too short for batch_size={batch_size}"
                         + ("" if tail else f" and full segments of {tgt_len}"))
    rows = stream[: n_step * batch_size].view(batch_size, n_step)
    for i in range(0, n_step - 1, tgt_len):
        length = min(tgt_len, n_step - 1 - i)
        if length < tgt_len and not tail:
            return
        yield rows[:, i : i + length], rows[:, i + 1 : i + 1 + length]


@torch.no_grad()
def evaluate_stream(
    model: TransformerXL, stream: torch.Tensor, batch_size: int, tgt_len: int, mem_len: int, *, tail: bool = True
) -> tuple[float, int]:
    """Summed NLL (nats, float64) and number of predicted tokens over a whole token stream.

    Segments of ``tgt_len`` (:func:`stream_segments`; ``tail=False``: full segments only, as the
    scripts) with the memory carried across segments, in eval mode; perplexity = exp(nll / tokens),
    per token of the stream (``<eos>`` included when the stream has it), as the scripts' ``evaluate``.
    Use :meth:`XLConfig.evaluation_lengths` for the scripts' ``tgt_len``/``mem_len``.  The sum stays
    on the device until the end.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    n_tokens, memory = 0, None
    try:
        for inputs, targets in stream_segments(stream.to(device), batch_size, tgt_len, tail=tail):
            nll, memory = model(inputs, targets, memory, mem_len=mem_len)
            total += nll.double().sum()
            n_tokens += targets.numel()
    finally:
        model.train(was_training)
    return float(total), n_tokens


class StreamingTransformerXL(TransformerXL):
    """A :class:`TransformerXL` that keeps the memory of the training segment it ran last, so that a
    training loop that knows nothing of memories (``normlab.train``'s) carries it from one step to the
    next: :meth:`carried_memory` gives the memory for a batch of segments, :meth:`carry` keeps the one
    a step returned.

    A batch is named by its example ids (``normlab.train.families.lm_stream``: segment ``s`` of ``B``
    rows is the ids ``s·B … s·B + B - 1``); the memory carries over when the ids are the previous
    batch's plus ``B`` (the next segment of every row), and starts empty at segment 0 (a new epoch,
    as the scripts reset ``mems`` at each epoch).  Any other batch is refused: memory that does not
    belong to it would be silently wrong.

    The carried memory is part of ``state_dict()`` (``carried_states``: per layer, left-padded to
    ``mem_len`` so that its shape never changes; ``carried_position``: [next first id, rows, valid
    positions]), so a checkpoint resumes with exactly the memory the interrupted run had.  It is kept
    as plain attributes, not buffers: nothing (DDP's buffer broadcast) may overwrite it.
    """

    def __init__(self, opts: ModelOptions, vocab_size: int, xl: XLConfig | dict | None = None):
        super().__init__(opts, vocab_size, xl)
        self._carried: Memory | None = None
        self._next_first, self._rows = -1, 0  # the first id and size of the batch the memory is for

    def carried_memory(self, ids) -> Memory | None:
        """The memory for the batch of segments ``ids`` (host integers, consecutive), or None at segment 0."""
        first, rows = int(ids[0]), len(ids)
        if int(ids[-1]) - first != rows - 1:
            raise ValueError(f"a stream batch holds consecutive segment ids; got {list(ids)[:4]}...")
        if first == 0:
            return None
        if self._carried is None or (first, rows) != (self._next_first, self._rows):
            raise ValueError(
                f"no memory for the segments starting at id {first}: the last training step ran "
                + (f"the segments before id {self._next_first}" if self._carried is not None else "nothing")
                + "; a stream is trained in order from segment 0 (or resumed from a checkpoint, which holds the memory)"
            )
        return self._carried

    def carry(self, memory: Memory | None, ids) -> None:
        """Keep ``memory`` (what the step on the segments ``ids`` returned) for the next segments."""
        self._carried = memory
        self._next_first, self._rows = int(ids[0]) + len(ids), len(ids)

    def forget(self) -> None:
        self._carried, self._next_first, self._rows = None, -1, 0

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        m, mem = self.xl.mem_len, self._carried
        if mem is None:
            states = torch.zeros(0, device=self.u.device)
            valid = 0
        else:
            valid = mem.length
            states = F.pad(torch.stack(mem.states), (0, 0, m - valid, 0))  # (layers, B, mem_len, d)
        destination[prefix + "carried_states"] = states
        destination[prefix + "carried_position"] = torch.tensor([self._next_first, self._rows, valid])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        keys = (prefix + "carried_states", prefix + "carried_position")
        for key in keys:
            if key in unexpected_keys:
                unexpected_keys.remove(key)
        if keys[1] not in state_dict:  # a checkpoint from before memories were kept: none
            self.forget()
            return
        next_first, rows, valid = (int(v) for v in state_dict[keys[1]])
        states = state_dict[keys[0]]
        if valid == 0 or states.numel() == 0:
            self.forget()
            return
        states = states[:, :, states.shape[2] - valid :].to(self.u.device)
        self._carried = Memory(tuple(states.unbind(0)))
        self._next_first, self._rows = next_first, rows
