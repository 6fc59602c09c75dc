"""The CRF benchmark script still runs (not a timed test: a tiny shape, a few rounds, output checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_crf_prints_a_row_per_variant_and_tag_count():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_crf.py"), "--batch", "4", "--time", "6", "--tags", "3", "5"]
    r = subprocess.run([*cmd, "--repeats", "2", "--warmup", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = re.findall(r"^\| (\d+) \| (ours: [^|]+) \| ([0-9.]+) \|", r.stdout, flags=re.M)
    assert {(n, v.strip()) for n, v, _ in rows} == {
        (n, v) for n in ("3", "5") for v in ("ours: NLL fwd+bwd", "ours: Viterbi")
    }, r.stdout
