"""A Transformer encoder with a CRF on top, for NER as TENER (Yan et al. 2019) runs it.

tokens (+ character ids) -> token embedding [‖ CharCNN] -> (in_fc) -> studied-norm encoder stack
-> dropout (``fc_dropout``) -> Linear -> log_softmax -> :class:`~normlab.models.crf.LinearChainCRF`.

What follows TENER's code: the log-softmaxed emissions, the CRF with start/end scores, transition
constraints in decoding only, the loss as the **mean over sentences** of the sentence NLL (fastNLP
averages TENER's per-sentence loss over the batch; the RBN penalty is then divided by the number of
sentences, ``regularization_loss(model, n_sentences)``), the character CNN (below), word dropout
(a training token replaced by ``<unk>`` with probability ``word_dropout``; TENER 0.02).  What differs:
the encoder is normlab's studied-norm stack (absolute sinusoidal positions, scaled attention) instead
of TENER's un-scaled relative attention, and the word table is trained from scratch (TENER starts
from GloVe 100d; no vector download here).  docs/lm_ner_models.md lists all of it.

:class:`CharCNN` is fastNLP's ``CNNCharEmbedding`` as TENER configures it for CoNLL-2003: character
embeddings (30) -> dropout -> one convolution (30 filters, width 3) -> ReLU -> max over the word's
characters -> Linear (30) -> dropout (0.3).  It takes character ids per token, (batch, time, chars),
0 the padding character (:func:`char_vocabulary`, :func:`char_ids` build them from words).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .crf import LinearChainCRF, allowed_transitions
from .options import ModelOptions

CHAR_PAD, CHAR_UNK = 0, 1
TAG_SCHEMES = ("iob2", "bioes")  # what a CRF can learn from IOB2 data (crf.convert_iob2)


@dataclass(frozen=True)
class CRFOptions:
    """``model.crf_options`` of a run (with ``model.crf: true``).

    ``tag_scheme``: the tags the CRF learns and decodes -- ``iob2`` (the data's) or ``bioes`` (TENER
    converts CoNLL-2003 to BIOES; RESUME's BMESO is the same scheme with M for I); the data's IOB2
    tags are converted when a run loads them.  ``char_cnn``: the :class:`CharCNN` features (TENER's
    CoNLL-2003 run; its RESUME tokens are characters already), with ``char_*`` its sizes and
    ``char_min_freq`` the count a character needs to get its own id (2).  ``max_word_len``: characters
    kept per word (None: all).  ``fc_dropout``: before the emission layer (None: ``model.dropout``;
    TENER 0.4).  ``word_dropout``: a training token becomes ``<unk>`` with this probability.  The
    character sizes default to TENER's; config/paper.yaml sets the rest.
    """

    tag_scheme: str = "iob2"
    char_cnn: bool = False
    char_dim: int = 30
    char_filters: int = 30
    char_kernel: int = 3
    char_out_dim: int = 30
    char_dropout: float = 0.3
    char_min_freq: int = 2
    max_word_len: int | None = None
    fc_dropout: float | None = None
    word_dropout: float = 0.0

    def __post_init__(self):
        if self.tag_scheme not in TAG_SCHEMES:
            raise ValueError(f"model.crf_options.tag_scheme: {self.tag_scheme!r} is not valid; "
                             f"valid values: {', '.join(TAG_SCHEMES)}")
        if self.char_kernel % 2 != 1:
            raise ValueError(f"model.crf_options.char_kernel must be odd; got {self.char_kernel}")

    @classmethod
    def from_dict(cls, d: dict) -> CRFOptions:
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"unknown CRF option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
        return cls(**d)

    def char_options(self) -> dict:
        """The keyword arguments of :class:`CharCNN` (besides the number of characters)."""
        return dict(char_dim=self.char_dim, filters=self.char_filters, kernel=self.char_kernel,
                    out_dim=self.char_out_dim, dropout=self.char_dropout)


def char_vocabulary(words: Iterable[str], min_freq: int = 2) -> dict[str, int]:
    """Character -> id for characters seen at least ``min_freq`` times (TENER: 2); 0 pad, 1 unknown."""
    counts = Counter(ch for word in words for ch in word)
    kept = sorted(ch for ch, c in counts.items() if c >= min_freq)
    return {ch: i for i, ch in enumerate(kept, start=2)}


def char_ids(sentences: list[list[str]], vocab: dict[str, int], max_word_len: int | None = None) -> torch.Tensor:
    """(batch, time, chars) long tensor of character ids, right-padded with 0 (words cut at max_word_len)."""
    t = max((len(s) for s in sentences), default=0)
    w = max((len(word) for s in sentences for word in s), default=0)
    w = max(1, w if max_word_len is None else min(w, max_word_len))
    out = torch.zeros(len(sentences), t, w, dtype=torch.long)
    for i, sentence in enumerate(sentences):
        for j, word in enumerate(sentence):
            ids = [vocab.get(ch, CHAR_UNK) for ch in word[:w]]
            out[i, j, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


class CharCNN(nn.Module):
    """Character ids (batch, time, chars) -> one vector per token (batch, time, out_dim).

    A token without characters (padding) gets the zero vector before ``fc``.
    """

    def __init__(
        self,
        n_chars: int,
        char_dim: int = 30,
        filters: int = 30,
        kernel: int = 3,
        out_dim: int = 30,
        dropout: float = 0.3,
    ):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"the character CNN needs an odd kernel width; got {kernel}")
        self.embed = nn.Embedding(n_chars, char_dim, padding_idx=CHAR_PAD)
        self.conv = nn.Conv1d(char_dim, filters, kernel, padding=kernel // 2)
        self.fc = nn.Linear(filters, out_dim)
        self.drop = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        b, t, w = chars.shape
        pad = chars == CHAR_PAD
        x = self.drop(self.embed(chars)).view(b * t, w, -1).transpose(1, 2)
        h = F.relu(self.conv(x)).transpose(1, 2).reshape(b, t, w, -1)
        h = h.masked_fill(pad.unsqueeze(-1), float("-inf")).amax(dim=2)
        h = h.masked_fill(pad.all(dim=2, keepdim=True), 0.0)
        return self.drop(self.fc(h))


class CRFTagger(nn.Module):
    """Encoder + CRF tagger.

    ``label_names``/``tag_scheme`` ("iob2", "bioes", "bmes"): decoding constraints (both or neither).
    ``n_chars`` > 0 adds the CharCNN (``char_options``: its keyword arguments); its output is
    concatenated to the token embedding and mapped back to d_model (TENER's ``in_fc``).
    ``fc_dropout``: before the emission layer (None: ``opts.dropout``; TENER 0.4).
    ``word_dropout``/``unk_id``: training-time word dropout (needs ``unk_id``).
    """

    def __init__(
        self,
        opts: ModelOptions,
        vocab_size: int,
        pad_id: int,
        n_labels: int,
        label_names: list[str] | None = None,
        tag_scheme: str | None = None,
        n_chars: int = 0,
        char_options: dict | None = None,
        fc_dropout: float | None = None,
        word_dropout: float = 0.0,
        unk_id: int | None = None,
    ):
        super().__init__()
        if (label_names is None) != (tag_scheme is None):
            raise ValueError("give both label_names and tag_scheme for decoding constraints, or neither")
        if label_names is not None and len(label_names) != n_labels:
            raise ValueError(f"{len(label_names)} label names for n_labels={n_labels}")
        if word_dropout > 0 and unk_id is None:
            raise ValueError("word_dropout needs unk_id (the id a dropped word becomes)")
        self.embed = opts.token_embedding(vocab_size, pad_id)
        self.chars = CharCNN(n_chars, **(char_options or {})) if n_chars > 0 else None
        self.in_fc = nn.Linear(opts.d_model + self.chars.out_dim, opts.d_model) if self.chars is not None else None
        self.encoder = opts.studied_stack()
        self.fc_drop = nn.Dropout(opts.dropout if fc_dropout is None else fc_dropout)
        self.head = nn.Linear(opts.d_model, n_labels)
        allowed = allowed_transitions(label_names, tag_scheme) if label_names is not None else None
        self.crf = LinearChainCRF(n_labels, allowed)
        self.word_dropout, self.unk_id = word_dropout, unk_id

    def forward(self, tokens: torch.Tensor, pad_mask: torch.Tensor | None = None, chars: torch.Tensor | None = None):
        """Emission log-probabilities (batch, time, n_labels)."""
        if (chars is None) != (self.chars is None):
            raise ValueError("chars must be given exactly when the tagger was built with n_chars > 0")
        if self.training and self.word_dropout > 0:
            drop = torch.rand(tokens.shape, device=tokens.device) < self.word_dropout
            if pad_mask is not None:
                drop &= ~pad_mask
            tokens = tokens.masked_fill(drop, self.unk_id)
        x = self.embed(tokens)
        if self.chars is not None:
            x = self.in_fc(torch.cat([x, self.chars(chars)], dim=-1))
        h = self.encoder(x, pad_mask)
        return F.log_softmax(self.head(self.fc_drop(h)).float(), dim=-1)

    def loss(self, tokens, tags, pad_mask=None, chars=None, reduction: str = "mean") -> torch.Tensor:
        """CRF negative log-likelihood: ``mean`` over sentences (TENER), ``sum``, or ``none`` (batch,)."""
        nll = self.crf.nll(self(tokens, pad_mask, chars), tags, pad_mask)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")

    @torch.no_grad()
    def decode(self, tokens, pad_mask=None, chars=None) -> torch.Tensor:
        """Viterbi tags (batch, time), 0 at padding."""
        return self.crf.decode(self(tokens, pad_mask, chars), pad_mask)[0]
