"""The one Transformer block every model family is built from, and what the blocks share.

A block is self-attention, optional cross-attention, and a feed-forward network, each a residual
sub-layer with its own norm.  ``placement`` decides where the norm sits:

* ``post`` (Vaswani et al.):  x = Norm(x + Dropout(Sublayer(x)))
* ``pre``  (Xiong et al.):    x = x + Dropout(Sublayer(Norm(x)));  the stack adds a final norm.

Every norm is built with :func:`normlab.norms.build_norm` and is called with the padding mask of the
sequence it normalises, so batch-statistics norms (BN, RBN, PowerNorm) never count padding.

Initialisation (``INITS``), per sub-layer (:class:`BlockConfig` ``attention_init`` / ``ffn_init``):

* ``torch``: PyTorch's defaults (uniform weights and biases, bound 1/√fan_in).
* ``fairseq``: fairseq 0.9's Transformer.  Attention: q, k and v weights Xavier-uniform with gain
  1/√2 (each a d×d matrix; our fused key/value projection is initialised as its two halves), their
  biases PyTorch's default (fairseq does not reset them); the output projection Xavier-uniform
  with a zero bias.  Feed-forward: both linears Xavier-uniform with zero biases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from normlab.norms import build_norm

PLACEMENTS = ("post", "pre")
INITS = ("torch", "fairseq")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}
POSITIONS = ("sinusoidal", "learned")


@dataclass(frozen=True)
class NormSpec:
    """Which norm to build and with what options (``options`` go to ``build_norm``)."""

    name: str = "ln"
    options: dict = field(default_factory=dict)

    def build(self, dim: int) -> nn.Module:
        return build_norm(self.name, dim, **self.options)


@dataclass(frozen=True)
class BlockConfig:
    """Shape and regularisation of one Transformer block (shared by all blocks of a stack)."""

    d_model: int
    n_heads: int
    d_ff: int
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    placement: str = "post"
    activation: str = "relu"  # a key of ACTIVATIONS (ModelOptions checks the values)
    attention_init: str = "torch"  # INITS
    ffn_init: str = "torch"  # INITS


def fairseq_linear_(linear: nn.Linear, gain: float = 1.0) -> nn.Linear:
    """fairseq's ``Linear``: Xavier-uniform weight (``gain``), zero bias."""
    nn.init.xavier_uniform_(linear.weight, gain=gain)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")


class MultiHeadAttention(nn.Module):
    """Multi-head attention over ``F.scaled_dot_product_attention``; self- or cross-attention."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, init: str = "torch"):
        super().__init__()
        _check_init(init)
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        if init == "fairseq":
            self._fairseq_init(d_model)

    @torch.no_grad()
    def _fairseq_init(self, d: int) -> None:
        # q, k, v: Xavier over each d x d matrix (the key and value halves of kv_proj separately, so the
        # bound is fairseq's), gain 1/sqrt(2); their biases keep PyTorch's default, as in fairseq 0.9
        gain = 1 / math.sqrt(2)
        nn.init.xavier_uniform_(self.q_proj.weight, gain=gain)
        nn.init.xavier_uniform_(self.kv_proj.weight[:d], gain=gain)
        nn.init.xavier_uniform_(self.kv_proj.weight[d:], gain=gain)
        fairseq_linear_(self.out_proj)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D/H)
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        key_pad_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        source = x if memory is None else memory
        q = self._heads(self.q_proj(x))
        k, v = (self._heads(t) for t in self.kv_proj(source).chunk(2, dim=-1))
        mask = None
        if key_pad_mask is not None:
            # (B, 1, 1, S) boolean "may attend"; combined with causality when both apply
            mask = ~key_pad_mask[:, None, None, :]
            if causal:
                t, s = x.shape[1], source.shape[1]
                mask = mask & torch.ones(t, s, dtype=torch.bool, device=x.device).tril()
            causal = False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
        )
        b, _, t, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, activation: str, activation_dropout: float, init: str = "torch"):
        super().__init__()
        _check_init(init)
        self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        if init == "fairseq":
            fairseq_linear_(self.fc1)
            fairseq_linear_(self.fc2)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(activation_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class TransformerBlock(nn.Module):
    """Self-attention [+ cross-attention] + FFN, Post- or Pre-Norm; one norm per sub-layer.

    Norm attribute names: ``attn_norm``, ``cross_norm`` (decoder blocks), ``ffn_norm``.
    """

    def __init__(self, cfg: BlockConfig, norm: NormSpec, cross_attention: bool = False, causal: bool = False):
        super().__init__()
        self.pre_norm = cfg.placement == "pre"
        self.causal = causal
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cfg.attention_init)
        self.attn_norm = norm.build(cfg.d_model)
        self.cross_attn, self.cross_norm = None, None
        if cross_attention:
            self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cfg.attention_init)
            self.cross_norm = norm.build(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation, cfg.activation_dropout, cfg.ffn_init)
        self.ffn_norm = norm.build(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def _residual(self, x, norm, sublayer, pad_mask):
        if self.pre_norm:
            return x + self.drop(sublayer(norm(x, pad_mask)))
        return norm(x + self.drop(sublayer(x)), pad_mask)

    def forward(
        self,
        x: torch.Tensor,
        pad_mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_pad_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        def self_attention(h):
            return self.self_attn(h, key_pad_mask=pad_mask, causal=self.causal)

        def cross_attention(h):
            return self.cross_attn(h, memory, key_pad_mask=memory_pad_mask)

        x = self._residual(x, self.attn_norm, self_attention, pad_mask)
        if self.cross_attn is not None:
            x = self._residual(x, self.cross_norm, cross_attention, pad_mask)
        return self._residual(x, self.ffn_norm, self.ffn, pad_mask)


class TransformerStack(nn.Module):
    """``n_layers`` blocks; with Pre-Norm, a final norm (``final_norm``) on the last block's output."""

    def __init__(
        self,
        cfg: BlockConfig,
        n_layers: int,
        norm: NormSpec,
        final_norm: NormSpec | None = None,
        cross_attention: bool = False,
        causal: bool = False,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerBlock(cfg, norm, cross_attention, causal) for _ in range(n_layers)
        )
        self.final_norm = (final_norm or norm).build(cfg.d_model) if cfg.placement == "pre" else None

    def forward(self, x, pad_mask=None, memory=None, memory_pad_mask=None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pad_mask, memory, memory_pad_mask)
        if self.final_norm is not None:
            x = self.final_norm(x, pad_mask)
        return x


def sinusoidal_positions(n_positions: int, dim: int) -> torch.Tensor:
    """The fixed sin/cos position table of Vaswani et al. (n_positions, dim)."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq[: dim // 2])
    return table


class TokenEmbedding(nn.Module):
    """Token embedding scaled by √d plus positions (sinusoidal or learned), then dropout.

    ``weight`` is the token table; output layers may tie to it.  The table is N(0, d^-½) with a zero
    padding row, fairseq's ``Embedding``, under every init scheme.
    """

    def __init__(
        self, vocab_size: int, d_model: int, pad_id: int, max_positions: int, positions: str, dropout: float
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        nn.init.normal_(self.tokens.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.tokens.weight[pad_id].zero_()
        self.scale = math.sqrt(d_model)
        self.max_positions = max_positions
        if positions == "sinusoidal":
            table = sinusoidal_positions(max_positions, d_model)
            self.register_buffer("position_table", table, persistent=False)
            self.learned_positions = None
        elif positions == "learned":
            self.learned_positions = nn.Embedding(max_positions, d_model)
            nn.init.normal_(self.learned_positions.weight, std=0.02)
        else:
            raise ValueError(f"positions must be one of {', '.join(POSITIONS)}; got {positions!r}")
        self.drop = nn.Dropout(dropout)

    @property
    def weight(self) -> torch.Tensor:
        return self.tokens.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.max_positions:
            raise ValueError(
                f"sequence length {t} exceeds max_positions={self.max_positions}; raise model.max_positions"
            )
        pos = self.position_table[:t] if self.learned_positions is None else self.learned_positions.weight[:t]
        return self.drop(self.tokens(ids) * self.scale + pos)
