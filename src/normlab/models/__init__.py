"""Minimal Transformer models for the five task families, all built from one block (``blocks.py``).

=================  ===========================  =============================================
family             class                        inputs -> output
=================  ===========================  =============================================
``translation``    TranslationTransformer       (src, src_pad, prev, prev_pad) -> (B, T, V)
``lm``             CausalLM                     (tokens, pad_mask) -> (B, T, V)
``classification`` SequenceClassifier           (tokens, pad_mask) -> (B, n_classes)
``tagging``        SequenceTagger               (tokens, pad_mask) -> (B, T, n_labels)
``image``          VisionTransformer            (images) -> (B, n_classes)
=================  ===========================  =============================================

``build_model(family, options, **data_sizes)`` builds one; ``options`` is a :class:`ModelOptions`
or a dict of its fields (norm, placement, norm_scope, final_norm, sizes, dropout, ...).
"""

from __future__ import annotations

from torch import nn

from .blocks import BlockConfig, MultiHeadAttention, NormSpec, TransformerBlock, TransformerStack
from .classifier import SequenceClassifier
from .language_model import CausalLM
from .options import NORM_SCOPES, ModelOptions
from .tagger import SequenceTagger
from .translation import TranslationTransformer
from .vit import VisionTransformer

FAMILIES: dict[str, type[nn.Module]] = {
    "translation": TranslationTransformer,
    "lm": CausalLM,
    "classification": SequenceClassifier,
    "tagging": SequenceTagger,
    "image": VisionTransformer,
}

# families with a separate decoder, the only ones where norm_scope="encoder" means something
ENCODER_DECODER_FAMILIES = ("translation",)


def build_model(family: str, options: ModelOptions | dict, **data_sizes) -> nn.Module:
    """Build the model of ``family``; ``data_sizes`` are the family's constructor arguments
    (vocab_size/pad_id/..., n_classes, image_size/channels)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}")
    opts = options if isinstance(options, ModelOptions) else ModelOptions(**options)
    if opts.norm_scope == "encoder" and family not in ENCODER_DECODER_FAMILIES:
        raise ValueError(
            f"model.norm_scope='encoder' needs an encoder-decoder model; family {family!r} has one stack. "
            f"Use norm_scope='all' (valid values: {', '.join(NORM_SCOPES)})"
        )
    return FAMILIES[family](opts, **data_sizes)


__all__ = [
    "ENCODER_DECODER_FAMILIES",
    "FAMILIES",
    "BlockConfig",
    "CausalLM",
    "ModelOptions",
    "MultiHeadAttention",
    "NormSpec",
    "SequenceClassifier",
    "SequenceTagger",
    "TransformerBlock",
    "TransformerStack",
    "TranslationTransformer",
    "VisionTransformer",
    "build_model",
]
