"""Minimal Transformer models for the task families, built from one block (``blocks.py``; Transformer-XL its own).

=================  ===========================  =============================================
family             class                        inputs -> output
=================  ===========================  =============================================
``translation``    TranslationTransformer       (src, src_pad, prev, prev_pad) -> (B, T, V)
``lm``             CausalLM                     (tokens, pad_mask) -> (B, T, V)
``lm_stream``      StreamingTransformerXL       (tokens, targets, memory) -> NLL (B, T) or (B, T, V); memory
``classification`` SequenceClassifier           (tokens, pad_mask) -> (B, n_classes)
``tagging``        SequenceTagger               (tokens, pad_mask) -> (B, T, n_labels)
                   CRFTagger (``model.crf``)    (tokens, pad_mask, chars) -> emissions (B, T, n_labels)
``image``          VisionTransformer            (images) -> (B, n_classes)
=================  ===========================  =============================================

``build_model(family, options, **data_sizes)`` builds one (``MODELS`` maps the family names to the
classes); ``options`` is a :class:`ModelOptions` or a dict of its fields (norm, placement,
norm_scope, final_norm, sizes, dropout, ...).
"""

from __future__ import annotations

from torch import nn

from .blocks import BlockConfig, MultiHeadAttention, NormSpec, TransformerBlock, TransformerStack
from .classifier import SequenceClassifier
from .crf_tagger import CRFOptions, CRFTagger
from .language_model import CausalLM
from .options import NORM_SCOPES, ModelOptions
from .tagger import SequenceTagger
from .transformer_xl import StreamingTransformerXL, TransformerXL, XLConfig
from .translation import TranslationTransformer
from .vit import VisionTransformer

# the model of each built-in task family (``normlab.train.families`` names the same classes)
MODELS: dict[str, type[nn.Module]] = {
    "translation": TranslationTransformer,
    "lm": CausalLM,
    "lm_stream": StreamingTransformerXL,
    "classification": SequenceClassifier,
    "tagging": SequenceTagger,
    "image": VisionTransformer,
}


def check_norm_scope(norm_scope: str, model_class: type[nn.Module], family: str) -> None:
    """``norm_scope='encoder'`` needs a model with a separate decoder (class attribute ``encoder_decoder``)."""
    if norm_scope == "encoder" and not getattr(model_class, "encoder_decoder", False):
        raise ValueError(
            f"model.norm_scope: 'encoder' needs an encoder-decoder model, but task {family!r} has one stack; "
            f"use 'all' (valid values: {', '.join(NORM_SCOPES)})"
        )


def build_model(family: str | type[nn.Module], options: ModelOptions | dict, **data_sizes) -> nn.Module:
    """Build the model of ``family`` (a name of ``MODELS``, or a model class); ``data_sizes`` are the
    model's constructor arguments (vocab_size/pad_id/..., n_classes, image_size/channels)."""
    if isinstance(family, str):
        if family not in MODELS:
            raise ValueError(f"unknown model family {family!r}; valid families: {', '.join(MODELS)}")
        model_class, name = MODELS[family], family
    else:
        model_class, name = family, family.__name__
    opts = options if isinstance(options, ModelOptions) else ModelOptions(**options)
    check_norm_scope(opts.norm_scope, model_class, name)
    return model_class(opts, **data_sizes)


__all__ = [
    "MODELS",
    "BlockConfig",
    "CRFOptions",
    "CRFTagger",
    "CausalLM",
    "ModelOptions",
    "MultiHeadAttention",
    "NormSpec",
    "SequenceClassifier",
    "SequenceTagger",
    "StreamingTransformerXL",
    "TransformerBlock",
    "TransformerStack",
    "TransformerXL",
    "TranslationTransformer",
    "VisionTransformer",
    "XLConfig",
    "build_model",
    "check_norm_scope",
]
