"""Options shared by every model family, and where the studied norm goes.

``norm`` / ``norm_options``: the studied norm.  ``placement``: ``post`` or ``pre``.  Where the
studied norm goes is three independent options (x-transformers style):

* ``norm_scope`` (which stacks): ``all`` every stack; ``encoder`` the encoder only, the decoder
  keeps ``ln`` (the RBN authors' NMT code; only encoder–decoder models).
* ``norm_sites`` (which norms of those stacks): ``every`` the sub-layer norms and the Pre-Norm final
  norm; ``final`` only the Pre-Norm final norm, the sub-layer norms stay ``ln`` (the AdaNorm
  authors' released code, where only the two stack-final LayerNorms honour ``--lnv``).
* ``final_norm`` (what the final norm of a stack in scope is): ``same`` (the studied norm) or a
  norm name (the RBN code keeps ``ln`` there even in BN runs), built with ``final_norm_options``.

So the AdaNorm paper's placement (every LayerNorm of encoder and decoder replaced) is
``norm_scope=all, norm_sites=every, final_norm=same``; its released code's is the same with
``norm_sites=final``; the RBN recipe is ``norm_scope=encoder, norm_sites=every, final_norm=ln``.

``init``: how the linear layers start (``INITS`` of ``blocks``, plus ``rbn_fork``): ``torch``
(PyTorch's defaults), ``fairseq`` (fairseq 0.9's Transformer; task heads get fairseq's ``Linear``,
Xavier with zero bias), ``rbn_fork`` (``fairseq``, except that the feed-forward linears of the stack
:meth:`ModelOptions.studied_stack` builds, the translation encoder, keep PyTorch's default, as the
RBN authors' IWSLT14 scripts pass ``--encoder-fc1/2 nnlinear``).

``xl`` (the Transformer-XL options of task ``lm_stream``, ``XLConfig`` fields), ``crf`` and
``crf_options`` (task ``tagging``'s CRF tagger, ``CRFOptions`` fields) are read by one family each
(``FAMILY_MODEL_OPTIONS``); the run config checks them with that family.

The options reach ``normlab.norms.build_norm`` as they are: defaults that depend on the run
(PowerNorm's groups and warm-up) are filled in by the run config (``normlab.train.config``).

The value checks of every option live here (:meth:`ModelOptions.__post_init__`); the run-config
schema lists the same constants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from normlab.norms import NORMS

from .blocks import (
    ACTIVATIONS,
    INITS,
    PLACEMENTS,
    POSITIONS,
    BlockConfig,
    NormSpec,
    TokenEmbedding,
    TransformerStack,
    fairseq_linear_,
)

NORM_SCOPES = ("all", "encoder")
# ModelOptions fields that a single task family reads (the Transformer-XL options of ``lm_stream``,
# the CRF of ``tagging``).  A run config holds them only where they are given, so adding one changes
# the config of no other run (nor its hash).
FAMILY_MODEL_OPTIONS = ("xl", "crf", "crf_options")
NORM_SITES = ("every", "final")
POOLINGS = ("mean", "first")
FINAL_NORMS = ("same", *NORMS)
MODEL_INITS = (*INITS, "rbn_fork")

__all__ = [
    "ACTIVATIONS", "FAMILY_MODEL_OPTIONS", "FINAL_NORMS", "MODEL_INITS", "NORM_SCOPES", "NORM_SITES", "PLACEMENTS",
    "POOLINGS", "POSITIONS", "ModelOptions",
]  # fmt: skip


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
    norm_sites: str = "every"
    final_norm: str = "same"
    final_norm_options: dict = field(default_factory=dict)  # a named final_norm's options
    positions: str = "sinusoidal"
    max_positions: int = 1024
    pooling: str = "mean"  # classification: mean over non-pad tokens, or the first token
    patch_size: int = 4  # ViT
    init: str = "torch"
    # options one task family reads (FAMILY_MODEL_OPTIONS); checked by that family's config check
    xl: dict = field(default_factory=dict)  # lm_stream: normlab.models.transformer_xl.XLConfig fields
    crf: bool = False  # tagging: a CRF tagger (normlab.models.crf_tagger.CRFTagger)
    crf_options: dict = field(default_factory=dict)  # tagging with crf: CRFOptions fields

    def __post_init__(self):
        checks = [
            ("norm", self.norm, tuple(NORMS)),
            ("placement", self.placement, PLACEMENTS),
            ("norm_scope", self.norm_scope, NORM_SCOPES),
            ("norm_sites", self.norm_sites, NORM_SITES),
            ("final_norm", self.final_norm, FINAL_NORMS),
            ("positions", self.positions, POSITIONS),
            ("pooling", self.pooling, POOLINGS),
            ("activation", self.activation, tuple(ACTIVATIONS)),
            ("init", self.init, MODEL_INITS),
        ]
        for key, value, valid in checks:
            if value not in valid:
                raise ValueError(f"model.{key}: {value!r} is not valid; valid values: {', '.join(valid)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model={self.d_model} must be a multiple of model.n_heads={self.n_heads}")
        if self.d_model % 2:
            raise ValueError(f"model.d_model={self.d_model} must be even (sinusoidal positions)")
        if self.norm_sites == "final" and self.placement != "pre":
            raise ValueError(
                "model.norm_sites: 'final' puts the studied norm only in the Pre-Norm final norms, and "
                f"placement {self.placement!r} has none; use placement 'pre' or norm_sites 'every'"
            )
        if self.norm_sites == "final" and self.final_norm != "same":
            raise ValueError(
                f"model.norm_sites: 'final' with final_norm {self.final_norm!r} leaves the studied norm "
                "nowhere; use final_norm 'same' or norm_sites 'every'"
            )

    def block_config(self, encoder: bool = False) -> BlockConfig:
        """The blocks' shape, regularisation and init; ``encoder``: for the stack ``studied_stack``
        builds (``rbn_fork`` keeps PyTorch's default in its feed-forward linears)."""
        attention_init = "torch" if self.init == "torch" else "fairseq"
        ffn_init = "torch" if self.init == "torch" or (self.init == "rbn_fork" and encoder) else "fairseq"
        return BlockConfig(
            self.d_model, self.n_heads, self.d_ff, self.dropout, self.attention_dropout,
            self.activation_dropout, self.placement, self.activation, attention_init, ffn_init,
        )

    def head(self, d_in: int, d_out: int) -> nn.Linear:
        """A task head (classifier, tagger, ViT): PyTorch's default init, fairseq's ``Linear`` otherwise."""
        linear = nn.Linear(d_in, d_out)
        return linear if self.init == "torch" else fairseq_linear_(linear)

    def studied_norm(self) -> NormSpec:
        return NormSpec(self.norm, dict(self.norm_options))

    def block_norm(self) -> NormSpec:
        """The sub-layer norm of a stack in scope: the studied norm, or ``ln`` when only the final norms
        carry it (``norm_sites='final'``)."""
        return self.studied_norm() if self.norm_sites == "every" else NormSpec("ln")

    def studied_final_norm(self) -> NormSpec:
        if self.final_norm == "same":
            return self.studied_norm()
        return NormSpec(self.final_norm, dict(self.final_norm_options))

    def decoder_norms(self) -> tuple[NormSpec, NormSpec]:
        """(block norm, final norm) of a translation decoder: LN when the scope is the encoder only."""
        if self.norm_scope == "encoder":
            return NormSpec("ln"), NormSpec("ln")
        return self.block_norm(), self.studied_final_norm()

    def token_embedding(self, vocab_size: int, pad_id: int) -> TokenEmbedding:
        d, n_pos = self.d_model, self.max_positions
        return TokenEmbedding(vocab_size, d, pad_id, n_pos, self.positions, self.dropout)

    def studied_stack(self, causal: bool = False) -> TransformerStack:
        """A stack of ``n_layers`` blocks carrying the studied norm (encoders, the LM decoder)."""
        return TransformerStack(
            self.block_config(encoder=True), self.n_layers, self.block_norm(), self.studied_final_norm(),
            causal=causal,
        )

    def to_dict(self) -> dict:
        return asdict(self)
