"""Options shared by every model family, and where the studied norm goes.

``norm`` / ``norm_options``: the studied norm.  ``placement``: ``post`` or ``pre``.
``norm_scope``: ``all`` puts the studied norm in every position; ``encoder`` puts it in the encoder
only and keeps the decoder on ``ln`` (the RBN authors' NMT code; only encoder–decoder models).
``final_norm``: the Pre-Norm final norm of each stack that carries the studied norm: ``same`` (the
studied norm) or a norm name (the RBN code keeps ``ln`` there even in BN runs), built with
``final_norm_options``.  The options reach ``normlab.norms.build_norm`` as they are: defaults that
depend on the run (PowerNorm's groups and warm-up) are filled in by the run config
(``normlab.train.config``).

The value checks of every option live here (:meth:`ModelOptions.__post_init__`); the run-config
schema lists the same constants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from normlab.norms import NORMS

from .blocks import ACTIVATIONS, PLACEMENTS, POSITIONS, BlockConfig, NormSpec, TokenEmbedding, TransformerStack

NORM_SCOPES = ("all", "encoder")
POOLINGS = ("mean", "first")
FINAL_NORMS = ("same", *NORMS)

__all__ = ["ACTIVATIONS", "FINAL_NORMS", "NORM_SCOPES", "PLACEMENTS", "POOLINGS", "POSITIONS", "ModelOptions"]


@dataclass(frozen=True)
class ModelOptions:
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 256
    n_layers: int = 2
    n_decoder_layers: int | None = None  # translation; None: same as n_layers
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    activation: str = "relu"
    norm: str = "ln"
    norm_options: dict = field(default_factory=dict)
    placement: str = "post"
    norm_scope: str = "all"
    final_norm: str = "same"
    final_norm_options: dict = field(default_factory=dict)  # a named final_norm's options
    positions: str = "sinusoidal"
    max_positions: int = 1024
    pooling: str = "mean"  # classification: mean over non-pad tokens, or the first token
    patch_size: int = 4  # ViT

    def __post_init__(self):
        checks = [
            ("norm", self.norm, tuple(NORMS)),
            ("placement", self.placement, PLACEMENTS),
            ("norm_scope", self.norm_scope, NORM_SCOPES),
            ("final_norm", self.final_norm, FINAL_NORMS),
            ("positions", self.positions, POSITIONS),
            ("pooling", self.pooling, POOLINGS),
            ("activation", self.activation, tuple(ACTIVATIONS)),
        ]
        for key, value, valid in checks:
            if value not in valid:
                raise ValueError(f"model.{key}: {value!r} is not valid; valid values: {', '.join(valid)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model={self.d_model} must be a multiple of model.n_heads={self.n_heads}")
        if self.d_model % 2:
            raise ValueError(f"model.d_model={self.d_model} must be even (sinusoidal positions)")

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            self.d_model, self.n_heads, self.d_ff, self.dropout, self.attention_dropout,
            self.activation_dropout, self.placement, self.activation,
        )

    def studied_norm(self) -> NormSpec:
        return NormSpec(self.norm, dict(self.norm_options))

    def studied_final_norm(self) -> NormSpec:
        if self.final_norm == "same":
            return self.studied_norm()
        return NormSpec(self.final_norm, dict(self.final_norm_options))

    def decoder_norms(self) -> tuple[NormSpec, NormSpec]:
        """(block norm, final norm) of a translation decoder: LN when the scope is the encoder only."""
        if self.norm_scope == "encoder":
            return NormSpec("ln"), NormSpec("ln")
        return self.studied_norm(), self.studied_final_norm()

    def token_embedding(self, vocab_size: int, pad_id: int) -> TokenEmbedding:
        d, n_pos = self.d_model, self.max_positions
        return TokenEmbedding(vocab_size, d, pad_id, n_pos, self.positions, self.dropout)

    def studied_stack(self, causal: bool = False) -> TransformerStack:
        """A stack of ``n_layers`` blocks carrying the studied norm (encoders, the LM decoder)."""
        return TransformerStack(
            self.block_config(), self.n_layers, self.studied_norm(), self.studied_final_norm(), causal=causal
        )

    def to_dict(self) -> dict:
        return asdict(self)
