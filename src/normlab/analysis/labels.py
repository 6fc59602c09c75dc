"""How the analysis names things for a reader: norms, placements, tasks, TID kinds, norm modules.

One module for every label the tables, figures, claims and notebooks print.
"""

from __future__ import annotations

import re

NORM_LABELS = {"ln": "LN", "ln_simple": "LN-simple", "detachnorm": "DetachNorm", "adanorm": "AdaNorm",
               "rmsnorm": "RMSNorm", "bn": "BN", "rbn": "RBN", "powernorm": "PowerNorm", "pn_vanilla": "PN-V",
               "none": "w/o Norm", "dyt": "DyT"}
# the plotting order of the norms: the LN family, then the batch-statistics norms
NORM_ORDER = ("ln", "ln_simple", "adanorm", "detachnorm", "rmsnorm", "dyt", "none", "bn", "rbn", "powernorm",
              "pn_vanilla")
PLACEMENT_LABELS = {"post": "Post-Norm", "pre": "Pre-Norm"}
PLACEMENT_SHORT = {"post": "Post", "pre": "Pre"}
# the papers' CV-vs-NLP contrast: image first, then LM, then the other NLP tasks
TASK_ORDER = ("image", "lm", "lm_stream", "translation", "tagging", "classification")
TID_KIND_LABELS = {"mean_tid": "mean TID  ‖μ_B − μ̂‖ / ‖σ̂‖", "var_tid": "variance TID  ‖σ_B − σ̂‖ / ‖σ̂‖"}
TID_SUMMARY_LABELS = {"first": "first BN layer", "max": "maximum over layers", "mean": "mean over layers"}
MEASURE_LABELS = {"c50": "C50%  λ₁/λ₅₀%", "c80": "C80%  λ₁/λ₈₀%", "cmax": "Cmax  λ_max"}
METRIC_UNITS = {"bleu": "BLEU", "bleu_tok": "tokenised BLEU", "accuracy": "accuracy (%)", "f1": "F1 (%)",
                "ppl": "perplexity", "loss": "nats per target"}
PERCENT_METRICS = ("accuracy", "f1")  # the engine reports fractions; the papers print percent
BASELINE_LABELS = {"copy_source": "copy-source BLEU", "copy_source_tok": "copy-source tokenised BLEU",
                   "unigram": "unigram-LM perplexity",
                   "majority": "majority class / tag", "all_o": "all-O tagging"}


def norm_label(norm: str) -> str:
    return NORM_LABELS.get(norm, norm)


def cell_label(norm: str, placement: str) -> str:
    return f"{norm_label(norm)} {PLACEMENT_LABELS.get(placement, placement)}"


def module_key(module: str) -> tuple:
    """Forward order of a norm module: encoder before decoder, then layer, then position."""
    parts = str(module).split(".")
    stack = 0 if "encoder" in parts else 1 if "decoder" in parts else 2
    digits = [int(p) for p in parts if p.isdigit()]
    layer = digits[0] if digits else 10**6  # the final norm comes after every layer
    position = {"attn_norm": 0, "cross_norm": 1, "ffn_norm": 2}.get(parts[-1], 3)
    return stack, layer, position, str(module)


def module_label(module: str) -> str:
    """'encoder.layers.1.ffn_norm' -> 'E1 ffn'; 'decoder.final_norm' -> 'D final'."""
    parts = str(module).split(".")
    stack = "E" if "encoder" in parts else "D" if "decoder" in parts else ""
    digits = [p for p in parts if p.isdigit()]
    position = re.sub(r"_norm$", "", parts[-1])
    return f"{stack}{digits[0] if digits else ''} {position}".strip()
