"""Encoder–decoder Transformer for translation: shared embeddings, sinusoidal positions, beam search
as fairseq's SequenceGenerator does it.

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
    def greedy(
        self, src, src_pad, max_len_a: float = 1.0, max_len_b: int = 50, min_len: int = 1
    ) -> list[list[int]]:
        """Argmax decoding (EOS not before ``min_len`` tokens, at most the beam search's max length);
        returns token ids without BOS/EOS, one list per sentence.  Equals ``beam_search(beam=1)``."""
        memory = self.encode(src, src_pad)
        b = src.shape[0]
        out = torch.full((b, 1), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        for step in range(self._max_len(src_pad, max_len_a, max_len_b)):
            logp = self._next_logprobs(out, memory, src_pad)
            if step < min_len:
                logp[:, self.eos_id] = float("-inf")
            nxt = logp.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            out = torch.cat([out, nxt[:, None]], 1)
            done = done | (nxt == self.eos_id)
            if bool(done.all()):
                break
        return self._strip(out[:, 1:])

    @torch.no_grad()
    def beam_search(
        self, src, src_pad, beam: int = 5, lenpen: float = 1.0, max_len_a: float = 1.0, max_len_b: int = 50,
        min_len: int = 1,
    ) -> list[list[int]]:
        """The best hypothesis of :meth:`generate` for every sentence (token ids without BOS/EOS)."""
        return [hyps[0][0] if hyps else [] for hyps in self.generate(src, src_pad, beam, lenpen, max_len_a,
                                                                      max_len_b, min_len)]

    @torch.no_grad()
    def generate(
        self, src, src_pad, beam: int = 5, lenpen: float = 1.0, max_len_a: float = 1.0, max_len_b: int = 50,
        min_len: int = 1,
    ) -> list[list[tuple[list[int], float]]]:
        """Beam search as fairseq's ``SequenceGenerator`` does it.  Per sentence, up to ``beam``
        finalised hypotheses (ids without BOS/EOS, score), best first; the score is the summed log
        probability, EOS included, divided by length**lenpen, the length counting EOS.

        At every step each live hypothesis is extended by every token and the best ``2 * beam``
        candidates of the sentence are kept (so ``beam`` non-EOS ones remain).  An EOS candidate among
        the best ``beam`` is finalised (set aside with its normalised score) until the sentence has
        ``beam`` finalised; the next live hypotheses are the best ``beam`` candidates that are not EOS.
        A sentence stops as soon as it has ``beam`` finalised hypotheses (fairseq has no further
        "could a live one still win" check); at the maximum length (``max_len_a * src_len + max_len_b``,
        src_len the batch's source width) only EOS is allowed, so every sentence stops.  EOS is not
        allowed before ``min_len`` tokens (fairseq's default 1: no empty translation); PAD and BOS are
        never generated; ``beam`` is at most vocab - 1.  Vectorised over the batch; finished sentences
        leave the batch; one host sync per step (has any sentence finished?).
        """
        device, eos, b = src.device, self.eos_id, src.shape[0]
        vocab = self.embed.weight.shape[0]
        beam = max(1, min(beam, vocab - 1))
        max_len = self._max_len(src_pad, max_len_a, max_len_b)
        if min_len > max_len:
            raise ValueError(f"min_len={min_len} is larger than the maximum length {max_len}")
        neg_inf = float("-inf")
        memory = self.encode(src, src_pad).repeat_interleave(beam, 0)
        mem_pad = src_pad.repeat_interleave(beam, 0)
        tokens = torch.full((b * beam, 1), self.bos_id, dtype=torch.long, device=device)
        scores = torch.zeros(b, beam, device=device)
        scores[:, 1:] = neg_inf  # the beams start identical: expand the first only
        # finalised hypotheses of the sentences still decoding; slot `beam` takes what is not kept
        fin_tokens = torch.full((b, beam + 1, max_len + 1), self.pad_id, dtype=torch.long, device=device)
        fin_scores = torch.full((b, beam + 1), neg_inf, device=device)
        fin_count = torch.zeros(b, dtype=torch.long, device=device)
        out_tokens = torch.full((b, beam, max_len + 1), self.pad_id, dtype=torch.long, device=device)
        out_scores = torch.full((b, beam), neg_inf, device=device)
        sent = torch.arange(b, device=device)  # the original index of every sentence still decoding
        offsets = torch.arange(2 * beam, device=device)
        for step in range(max_len + 1):
            n = sent.numel()
            logp = self._next_logprobs(tokens, memory, mem_pad)  # (n * beam, vocab)
            if step < min_len:
                logp[:, eos] = neg_inf
            if step >= max_len:  # only EOS at the maximum length
                logp = torch.full_like(logp, neg_inf).index_copy_(1, logp.new_tensor([eos], dtype=torch.long),
                                                                   logp[:, eos : eos + 1])
            cand_scores, flat = (scores.view(-1, 1) + logp).view(n, beam * vocab).topk(2 * beam, dim=1)
            cand_beam, cand_tok = flat // vocab, flat % vocab
            is_eos = cand_tok == eos
            # finalise the EOS candidates among the best `beam`, in order, up to `beam` per sentence
            first = is_eos[:, :beam] & (cand_scores[:, :beam] > neg_inf)
            slot = fin_count[:, None] + first.cumsum(1) - 1
            take = first & (slot < beam)
            slot = torch.where(take, slot, beam)
            prefix = tokens.view(n, beam, step + 1)[:, :, 1:]
            hyp = prefix.gather(1, cand_beam[:, :beam, None].expand(-1, -1, step))
            hyp = torch.cat([hyp, torch.full((n, beam, 1), eos, dtype=torch.long, device=device)], 2)
            fin_tokens[:, :, : step + 1].scatter_(1, slot[:, :, None].expand(-1, -1, step + 1), hyp)
            fin_scores.scatter_(1, slot, cand_scores[:, :beam] / (step + 1) ** lenpen)
            fin_count = fin_count + take.sum(1)
            done = fin_count >= beam if step < max_len else torch.ones_like(take[:, 0])
            n_done = int(done.sum())  # the step's one host sync
            if n_done:
                ended = done.nonzero().squeeze(1)
                out_tokens[sent[ended]] = fin_tokens[ended, :beam]
                out_scores[sent[ended]] = fin_scores[ended, :beam]
                if n_done == n:
                    break
            # the next live hypotheses: the best `beam` candidates that are not EOS
            live = (is_eos.long() * (2 * beam) + offsets).topk(beam, dim=1, largest=False).indices
            origin, nxt, scores = cand_beam.gather(1, live), cand_tok.gather(1, live), cand_scores.gather(1, live)
            keep = torch.arange(n, device=device)
            if n_done:  # finished sentences leave the batch
                keep = (~done).nonzero().squeeze(1)
                origin, nxt, scores = origin[keep], nxt[keep], scores[keep]
                fin_tokens, fin_scores, fin_count = fin_tokens[keep], fin_scores[keep], fin_count[keep]
                sent = sent[keep]
                memory = memory.view(n, beam, *memory.shape[1:])[keep].flatten(0, 1)
                mem_pad = mem_pad.view(n, beam, -1)[keep].flatten(0, 1)
            rows = (keep[:, None] * beam + origin).view(-1)
            tokens = torch.cat([tokens[rows], nxt.view(-1, 1)], 1)
        order = out_scores.argsort(dim=1, descending=True, stable=True)
        ranked_tokens = out_tokens.gather(1, order[:, :, None].expand_as(out_tokens)).tolist()
        ranked_scores = out_scores.gather(1, order).tolist()
        return [
            [(ids, score) for ids, score in zip(self._strip_rows(rows), row_scores, strict=True) if score > neg_inf]
            for rows, row_scores in zip(ranked_tokens, ranked_scores, strict=True)
        ]

    def _strip(self, ids: torch.Tensor) -> list[list[int]]:
        """Cut each row at its first EOS and drop padding."""
        return self._strip_rows(ids.tolist())

    def _strip_rows(self, rows: list[list[int]]) -> list[list[int]]:
        out = []
        for row in rows:
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            out.append([t for t in row if t != self.pad_id])
        return out
