"""The analysis settings a configuration declares before any run (``analysis:`` of the workflow config).

``normlab.workflow.check`` fills these defaults into every configuration (the schema,
``workflows/schemas/config.schema.yaml``, documents each key); ``normlab stats`` receives the filled
section (``--analysis``) and writes it beside its tables (``analysis.json``), so the claims report and
the figures state the margins, bars, windows and TID summary that produced them.

* ``tid_summary``: the one summary over a run's BN layers that the claims use (``first`` / ``max`` /
  ``mean``; all three are in the tables).  Declared ``max`` before the re-analysis of issue 14; the
  reasons are in ``docs/analysis_contract.md`` §5.1.  Not to be changed after looking at results.
* ``tid_windows``: the online-TID growth windows (claim A3).  The early window starts after the
  running statistics burnt in (``burn_in``/momentum steps) and after the learning-rate warm-up; it and
  the late window each cover a fraction of what remains of the run.
* ``margins``: non-inferiority / equivalence margins per metric ("≥" and "comparable" claims), in the
  metric's units as the engine reports it (accuracy and F1 are fractions: 0.01 = 1 point), or
  relative (``relative: true``: a fraction of the reference's value, tested on the log scale).
* ``learning_bars``: per primary metric, the trivial baseline LN must beat (``normlab baselines``
  computes it from the data the runs evaluate) and by how much; a setting whose LN does not is not
  testable and enters no count.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

TID_SUMMARIES = ("first", "max", "mean")

DEFAULTS: dict = {
    "tid_summary": "max",
    "tid_windows": {"burn_in": 3.0, "early": 0.2, "late": 0.2},
    "margins": {
        "bleu": {"value": 0.5, "relative": False},
        "bleu_tok": {"value": 0.5, "relative": False},
        "accuracy": {"value": 0.01, "relative": False},
        "f1": {"value": 0.01, "relative": False},
        "ppl": {"value": 0.02, "relative": True},
        "loss": {"value": 0.02, "relative": True},
    },
    "learning_bars": {
        "bleu": {"baseline": "copy_source", "margin": 1.0, "relative": False},
        "bleu_tok": {"baseline": "copy_source_tok", "margin": 1.0, "relative": False},
        "ppl": {"baseline": "unigram", "margin": 0.10, "relative": True},
        "accuracy": {"baseline": "majority", "margin": 0.05, "relative": False},
        "f1": {"baseline": "all_o", "margin": 0.05, "relative": False},
    },
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_defaults(section: dict | None) -> dict:
    """The ``analysis`` section with every analysis default filled in (keys of other stages kept)."""
    out = _merge(DEFAULTS, section or {})
    if out["tid_summary"] not in TID_SUMMARIES:
        raise ValueError(f"analysis.tid_summary {out['tid_summary']!r}: one of {', '.join(TID_SUMMARIES)}")
    return out


def load(value: str | Path | None) -> dict:
    """``--analysis``: a JSON object, or a YAML/JSON file (a workflow config's ``analysis:`` section is
    taken from it); None: the defaults."""
    if value is None:
        return with_defaults({})
    text = str(value).strip()
    if not text.startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise SystemExit(f"--analysis {text}: neither a JSON object nor a file")
        raw = yaml.safe_load(path.read_text()) or {}
        return with_defaults(raw.get("analysis", raw) if isinstance(raw, dict) else {})
    try:
        return with_defaults(json.loads(text))
    except json.JSONDecodeError as err:
        raise SystemExit(f"--analysis: not valid JSON ({err})") from None
