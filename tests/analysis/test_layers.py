"""Layers point one way: the analysis imports neither torch nor the training engine."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import normlab.analysis

# The probe runs a trained model (it is the one analysis step that needs torch); every other
# module reads tables.
NEEDS_TORCH = {"normlab.analysis.probes"}


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(normlab.analysis.__path__, "normlab.analysis.")]
    return sorted(n for n in names if n not in NEEDS_TORCH)


def test_every_analysis_module_imports_without_torch_or_the_engine():
    modules = _modules()
    assert "normlab.analysis.stats" in modules and "normlab.analysis.plots.tid_curves" in modules
    code = (f"import importlib, json, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted(k for k in sys.modules if k == 'torch' or k.startswith(('torch.', "
            "'normlab.train', 'normlab.norms', 'normlab.models')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_metric_directions_come_from_a_torch_free_module():
    out = subprocess.run([sys.executable, "-c", "import sys, normlab.metrics as m; "
                          "print(m.higher_is_better('bleu'), 'torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
