"""Training–Inference Discrepancy: what it is and how it is measured.

* :mod:`normlab.tid.measures`: the TID formulas, the online recorder that training uses, the frozen
  forwards and :func:`probe_tid`;
* :mod:`normlab.tid.probe`: ``normlab probe``, the TID decomposition (against its sampling floors) and
  the layer-wise conditioning of one finished run.
"""

from .measures import (
    PROBE_MODES,
    TID_KINDS,
    OnlineTIDRecorder,
    describe_module,
    frozen,
    normalises_with_running,
    probe_tid,
    tid_from_statistics,
)

__all__ = [
    "PROBE_MODES",
    "TID_KINDS",
    "OnlineTIDRecorder",
    "describe_module",
    "frozen",
    "normalises_with_running",
    "probe_tid",
    "tid_from_statistics",
]
