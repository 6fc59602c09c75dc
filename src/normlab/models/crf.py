"""A linear-chain CRF over tag sequences (Lafferty et al. 2001), as TENER puts on top of its encoder.

score(y | e) = start[y_1] + Σ_t e_t[y_t] + Σ_t trans[y_{t-1}, y_t] + end[y_n] over a sentence of n
real tokens; p(y | e) = exp(score) / Z with Z summed over every tag sequence of length n.

* :meth:`LinearChainCRF.nll` — log Z − score(gold), per sentence, by the forward algorithm in
  log-space: one loop over time steps, each step vectorised over batch × tags × tags.
* :meth:`LinearChainCRF.decode` — Viterbi with back-pointers; the backtrace is a loop over time
  steps with ``gather`` over the batch (no per-sentence Python, no host sync); returns a tensor.
* Padding: ``pad_mask`` (batch, time), True at padding, right-padded.  A padded step leaves the
  forward variables (and Viterbi scores) unchanged and its back-pointer is the identity, so padding
  changes neither Z, nor the score, nor the path.  A sentence of length 0 gets loss 0.
* ``allowed`` (:func:`allowed_transitions`): transitions a tagging scheme forbids (``O → I-PER``
  in IOB2, ``B-PER → O`` in BIOES, …) are excluded from **decoding**, as TENER (fastNLP's CRF
  applies its constraint matrix in ``viterbi_decode`` only; training scores every sequence).

Why our own and not the ``pytorch-crf`` package (0.7.2, MIT): its last release is from February 2019,
it has no transition constraints, its ``decode`` returns Python lists built by a per-sentence
backtrace, and each call checks the first mask column with a host sync (it refuses a batch holding
an empty sentence).  It does run on torch 2.13.  Measured side by side
(``benchmarks/bench_crf.py --repeats 200 --tags 9 17 20``: torch 2.13 CPU, 1 thread, shuffled order
every round, on a 2-core machine that other sessions were loading; batch 32 × 40 tokens with random
lengths 20–40; ours' median time as a ratio to pytorch-crf's; two runs gave the same ratios ±0.01):

=========================  ==========  ===========  ==========
operation                  9 tags      17 tags      20 tags
=========================  ==========  ===========  ==========
NLL forward + backward     0.59        0.65         0.68
Viterbi decode             0.41        0.46         0.50
=========================  ==========  ===========  ==========

Both agree on log Z and on the decoded paths (checked by the benchmark).
"""

from __future__ import annotations

import torch
from torch import nn

SCHEMES = ("iob2", "bioes", "bmes")
# the prefix letters of each scheme: (begin, inside, end, single); IOB2 has no end or single tags
_PREFIXES = {"iob2": ("B", "I", None, None), "bioes": ("B", "I", "E", "S"), "bmes": ("B", "M", "E", "S")}


def _parse(label: str, scheme: str) -> tuple[str, str | None]:
    if label == "O":
        return "O", None
    prefix, sep, kind = label.partition("-")
    if not sep or not kind or prefix not in {p for p in _PREFIXES[scheme] if p}:
        valid = "/".join(p for p in _PREFIXES[scheme] if p)
        raise ValueError(f"tag {label!r} is not 'O' or {valid}-TYPE, as the {scheme} scheme needs")
    return prefix, kind


def allowed_transitions(label_names: list[str], scheme: str) -> torch.Tensor:
    """Boolean (n+2, n+2) matrix: ``[a, b]`` True when tag b may follow tag a.

    Index n is the start of the sentence (as a "from"), n+1 its end (as a "to").  IOB2: ``I-X``
    only after ``B-X`` or ``I-X``.  BIOES/BMES: after ``B-X`` or ``I-X``/``M-X`` only ``I-X``/``M-X``
    or ``E-X``; everywhere else (start, ``E``, ``S``, ``O``) only ``B``, ``S``, ``O`` or the end.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; valid schemes: {', '.join(SCHEMES)}")
    begin, inside, end, _ = _PREFIXES[scheme]
    tags = [_parse(name, scheme) for name in label_names]
    n = len(tags)
    froms = [*tags, ("START", None)]
    tos = [*tags, None, ("END", None)]  # index n as a "to" (the start) is never allowed
    allowed = torch.zeros(n + 2, n + 2, dtype=torch.bool)
    for a, (fp, ft) in enumerate(froms):
        for b, to in enumerate(tos):
            if to is None:
                continue
            tp, tt = to
            if scheme == "iob2":
                ok = tp != inside or (fp in (begin, inside) and ft == tt)
            elif fp in (begin, inside):
                ok = tp in (inside, end) and tt == ft
            else:
                ok = tp not in (inside, end)
            allowed[a, b] = ok
    return allowed


def convert_iob2(label_names: list[str], scheme: str) -> tuple[list[str], torch.Tensor]:
    """The tag names of ``scheme`` for IOB2 ``label_names``, and the table that converts tags.

    ``table[a, b]`` is the new id of IOB2 tag ``a`` followed by tag ``b`` (``b = n``: the sentence
    ends), so a whole sentence converts in one lookup.  ``bioes``: ``B-X`` not followed by ``I-X``
    becomes ``S-X``, ``I-X`` not followed by ``I-X`` becomes ``E-X`` (the names are the IOB2 ones, then
    ``E-X``/``S-X`` in the order of the types).  The entities are the same in both schemes.
    """
    if scheme not in ("iob2", "bioes"):
        raise ValueError(f"IOB2 tags convert to 'iob2' or 'bioes', not {scheme!r}")
    parsed = [_parse(name, "iob2") for name in label_names]
    n = len(label_names)
    if scheme == "iob2":
        return list(label_names), torch.arange(n)[:, None].expand(n, n + 1).clone()
    names = list(label_names)
    extra = {}
    for prefix, kind in parsed:
        new = {"B": "S", "I": "E"}.get(prefix)
        if new is not None and f"{new}-{kind}" not in extra:
            extra[f"{new}-{kind}"] = len(names)
            names.append(f"{new}-{kind}")
    table = torch.zeros(n, n + 1, dtype=torch.long)
    for a, (prefix, kind) in enumerate(parsed):
        for b in range(n + 1):
            continues = b < n and parsed[b] == ("I", kind)
            if prefix == "O" or continues:
                table[a, b] = a
            else:
                table[a, b] = extra[f"{'S' if prefix == 'B' else 'E'}-{kind}"]
    return names, table


class LinearChainCRF(nn.Module):
    """Transition scores ``transitions[a, b]`` (tag a then b), ``start`` and ``end`` scores.

    ``allowed``: optional (n+2, n+2) boolean matrix of :func:`allowed_transitions`, used when decoding.
    Emissions (batch, time, n_tags) are scored in float32 at least.
    """

    def __init__(self, n_tags: int, allowed: torch.Tensor | None = None):
        super().__init__()
        if allowed is not None and allowed.shape != (n_tags + 2, n_tags + 2):
            raise ValueError(f"allowed must have shape ({n_tags + 2}, {n_tags + 2}); got {tuple(allowed.shape)}")
        self.n_tags = n_tags
        self.transitions = nn.Parameter(torch.empty(n_tags, n_tags))
        self.start = nn.Parameter(torch.empty(n_tags))
        self.end = nn.Parameter(torch.empty(n_tags))
        self.register_buffer("allowed", allowed.clone() if allowed is not None else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.transitions, self.start, self.end):
            nn.init.uniform_(p, -0.1, 0.1)

    def _check(self, emissions: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        if emissions.dim() != 3 or emissions.shape[-1] != self.n_tags:
            raise ValueError(f"emissions must be (batch, time, {self.n_tags}); got {tuple(emissions.shape)}")
        if pad_mask is not None and pad_mask.shape != emissions.shape[:2]:
            raise ValueError(
                f"pad_mask must be (batch, time) = {tuple(emissions.shape[:2])}; got {tuple(pad_mask.shape)}"
            )
        return emissions if emissions.dtype in (torch.float32, torch.float64) else emissions.float()

    def log_partition(self, emissions: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """log Z per sentence (batch,)."""
        e = self._check(emissions, pad_mask)
        alpha = self.start + e[:, 0]
        for t in range(1, e.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + e[:, t]
            alpha = step if pad_mask is None else torch.where(pad_mask[:, t, None], alpha, step)
        return torch.logsumexp(alpha + self.end, dim=1)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """score(tags) per sentence (batch,); tags at padded positions are ignored (any value)."""
        e = self._check(emissions, pad_mask)
        b, t = tags.shape
        keep = torch.ones(b, t, dtype=e.dtype, device=e.device) if pad_mask is None else (~pad_mask).to(e.dtype)
        tags = tags if pad_mask is None else tags.masked_fill(pad_mask, 0)
        emit = e.gather(2, tags.unsqueeze(2)).squeeze(2)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]
        last = (keep.sum(1).long() - 1).clamp_min(0)
        last_tag = tags.gather(1, last[:, None]).squeeze(1)
        return self.start[tags[:, 0]] + (emit * keep).sum(1) + (trans * keep[:, 1:]).sum(1) + self.end[last_tag]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """−log p(tags | emissions) per sentence (batch,); 0 for a sentence without tokens."""
        nll = self.log_partition(emissions, pad_mask) - self.score(emissions, tags, pad_mask)
        return nll if pad_mask is None else nll * (~pad_mask).any(1)

    def _constrained(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        trans, start, end = self.transitions, self.start, self.end
        if self.allowed is None:
            return trans, start, end
        n, forbidden = self.n_tags, ~self.allowed
        inf = float("-inf")
        return (
            trans.masked_fill(forbidden[:n, :n], inf),
            start.masked_fill(forbidden[n, :n], inf),
            end.masked_fill(forbidden[:n, n + 1], inf),
        )

    @torch.no_grad()
    def decode(
        self, emissions: torch.Tensor, pad_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Viterbi: (best tags (batch, time) long, 0 at padding; their scores (batch,))."""
        e = self._check(emissions, pad_mask)
        trans, start, end = self._constrained()
        b, t, n = e.shape
        score = start + e[:, 0]
        identity = torch.arange(n, device=e.device).expand(b, n)
        back = []
        for i in range(1, t):
            best, arg = (score.unsqueeze(2) + trans).max(dim=1)
            step = best + e[:, i]
            if pad_mask is not None:
                step = torch.where(pad_mask[:, i, None], score, step)
                arg = torch.where(pad_mask[:, i, None], identity, arg)
            score = step
            back.append(arg)
        best_score, tag = (score + end).max(dim=1)
        path = [tag]
        for arg in reversed(back):
            tag = arg.gather(1, tag[:, None]).squeeze(1)
            path.append(tag)
        tags = torch.stack(path[::-1], dim=1)
        return (tags if pad_mask is None else tags.masked_fill(pad_mask, 0)), best_score
