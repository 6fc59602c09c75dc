"""Encoder–decoder Transformer for translation: shared embeddings, sinusoidal positions, beam search.

One embedding table serves the source, the target and the output projection (a joined vocabulary,
as fairseq's ``--share-all-embeddings``).  Decoding recomputes the decoder over the whole prefix at
every step (no key/value cache): slower, but exact for every norm, batch-statistics ones included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import TransformerStack
from .options import ModelOptions


class TranslationTransformer(nn.Module):
    encoder_decoder = True  # a separate decoder: norm_scope "encoder" applies

    def __init__(self, opts: ModelOptions, vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
        super().__init__()
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.embed = opts.token_embedding(vocab_size, pad_id)
        self.encoder = opts.studied_stack()
        dec_norm, dec_final = opts.decoder_norms()
        self.decoder = TransformerStack(
            opts.block_config(), opts.n_decoder_layers or opts.n_layers, dec_norm, dec_final,
            cross_attention=True, causal=True,
        )

    def encode(self, src: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(src), src_pad)

    def decode(
        self, prev: torch.Tensor, prev_pad: torch.Tensor | None, memory, src_pad, last_only: bool = False
    ) -> torch.Tensor:
        h = self.decoder(self.embed(prev), prev_pad, memory, src_pad)
        if last_only:  # decoding needs only the newest position: skip the vocab projection of the rest
            h = h[:, -1:]
        return F.linear(h, self.embed.weight)  # tied output projection

    def forward(self, src, src_pad, prev, prev_pad) -> torch.Tensor:
        """Teacher-forced logits (batch, tgt_len, vocab) for the previous-token input ``prev``."""
        return self.decode(prev, prev_pad, self.encode(src, src_pad), src_pad)

    def _next_logprobs(self, prefix, memory, src_pad) -> torch.Tensor:
        """Log-probabilities of the next token (rows, vocab); padding and BOS are never generated."""
        logp = self.decode(prefix, None, memory, src_pad, last_only=True)[:, -1].float().log_softmax(-1)
        logp[:, [self.pad_id, self.bos_id]] = float("-inf")
        return logp

    def _max_len(self, src_pad: torch.Tensor, max_len_a: float, max_len_b: int) -> int:
        src_len = int((~src_pad).sum(1).max())
        return min(int(max_len_a * src_len + max_len_b), self.embed.max_positions - 1)

    @torch.no_grad()
    def greedy(self, src, src_pad, max_len_a: float = 1.0, max_len_b: int = 50) -> list[list[int]]:
        """Argmax decoding; returns token ids without BOS/EOS, one list per sentence."""
        memory = self.encode(src, src_pad)
        b = src.shape[0]
        out = torch.full((b, 1), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        for _ in range(self._max_len(src_pad, max_len_a, max_len_b)):
            nxt = self._next_logprobs(out, memory, src_pad).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            out = torch.cat([out, nxt[:, None]], 1)
            done = done | (nxt == self.eos_id)
            if bool(done.all()):
                break
        return self._strip(out[:, 1:])

    @torch.no_grad()
    def beam_search(
        self, src, src_pad, beam: int = 5, lenpen: float = 1.0, max_len_a: float = 1.0, max_len_b: int = 50
    ) -> list[list[int]]:
        """Beam search; the hypothesis returned maximises log p / length**lenpen.

        Finished hypotheses stay in the beam and are extended by padding at zero cost, so they keep
        competing with the running ones on their log-probability; the length penalty ranks the final
        beam (length counts the EOS, as fairseq does).  With ``beam=1`` this is greedy decoding.
        """
        b, device = src.shape[0], src.device
        memory = self.encode(src, src_pad)
        memory = memory.repeat_interleave(beam, 0)
        mem_pad = src_pad.repeat_interleave(beam, 0)
        tokens = torch.full((b * beam, 1), self.bos_id, dtype=torch.long, device=device)
        scores = torch.zeros(b, beam, device=device)
        scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
        done = torch.zeros(b * beam, dtype=torch.bool, device=device)
        lengths = torch.zeros(b * beam, device=device)
        for _ in range(self._max_len(src_pad, max_len_a, max_len_b)):
            logp = self._next_logprobs(tokens, memory, mem_pad)  # (b*beam, V)
            # a finished hypothesis may only continue with padding, at no cost
            finished_row = torch.full_like(logp[0], float("-inf"))
            finished_row[self.pad_id] = 0.0
            logp = torch.where(done[:, None], finished_row, logp)
            vocab = logp.shape[-1]
            cand = (scores.view(-1, 1) + logp).view(b, beam * vocab)
            scores, flat = cand.topk(beam, dim=-1)
            origin = (flat // vocab) + torch.arange(b, device=device)[:, None] * beam
            nxt = (flat % vocab).view(-1)
            origin = origin.view(-1)
            tokens = torch.cat([tokens[origin], nxt[:, None]], 1)
            was_done = done[origin]
            lengths = lengths[origin] + (~was_done).float()
            done = was_done | (nxt == self.eos_id)
            if bool(done.all()):
                break
        normalised = scores / lengths.view(b, beam).clamp_min(1.0) ** lenpen
        best = normalised.argmax(-1) + torch.arange(b, device=device) * beam
        return self._strip(tokens[best, 1:])

    def _strip(self, ids: torch.Tensor) -> list[list[int]]:
        """Cut each row at its first EOS and drop padding."""
        rows = []
        for row in ids.tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            rows.append([t for t in row if t != self.pad_id])
        return rows
