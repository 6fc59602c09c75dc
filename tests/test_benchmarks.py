"""The benchmark scripts still run (they are not timed tests: a tiny shape, one round, output checked)."""

from __future__ import annotations

import importlib.util
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from normlab.norms import NORMS

ROOT = Path(__file__).resolve().parents[1]


def _bench_norms():
    spec = importlib.util.spec_from_file_location("bench_norms", ROOT / "benchmarks" / "bench_norms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_norms_prints_every_norm_and_the_reference_rows():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_norms.py"), "--batch", "2", "--time", "8", "--dim", "16"]
    r = subprocess.run([*cmd, "--repeats", "2", "--warmup", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ratios = dict(re.findall(r"^\| `([^`]+)` \| ([0-9.]+) \|(?: [0-9]+ \|)?$", r.stdout, flags=re.M))
    for name in (*NORMS, "torch BatchNorm1d (no mask)", "torch F.rms_norm"):
        assert name in ratios, f"no row for {name!r}:\n{r.stdout}"
    assert float(ratios["ln"]) == 1.0  # the table is relative to ln (the step table's ln row too)
    assert re.search(r"Online TID recording .*: [0-9.]+ % of a training step", r.stdout), r.stdout
    # the norms are timed as training runs them: glibc keeps freed memory (normlab.train.runtime)
    expected = "glibc keeps freed memory (as training)" if platform.libc_ver()[0] == "glibc" else "default"
    assert r.stdout.splitlines()[0].endswith(f"allocator: {expected}"), r.stdout


def test_bench_norms_can_leave_the_allocator_as_it_is():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_norms.py"), "--batch", "2", "--time", "8", "--dim", "16"]
    r = subprocess.run([*cmd, "--repeats", "1", "--step-repeats", "1", "--warmup", "0", "--allocator", "default"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines()[0].endswith("allocator: default"), r.stdout
    typo = subprocess.run([*cmd, "--allocator", "trainig"], capture_output=True, text=True, timeout=300)
    assert typo.returncode == 2 and "invalid choice: 'trainig'" in typo.stderr


def test_every_round_times_every_norm_in_a_seeded_shuffled_order():
    shuffled_rounds = _bench_norms().shuffled_rounds
    names = list(NORMS)
    rounds = list(shuffled_rounds(names, 8, seed=3))
    assert [i for i, _ in rounds] == list(range(8))
    assert all(sorted(order) == sorted(names) for _, order in rounds)
    assert len({tuple(order) for _, order in rounds}) > 1  # not one fixed order
    assert len({order[0] for _, order in rounds}) > 1  # no norm always first (or always after another)
    assert list(shuffled_rounds(names, 8, seed=3)) == rounds  # reproducible from the seed
    assert list(shuffled_rounds(names, 8, seed=4)) != rounds


def test_ratios_pair_each_round_with_the_reference_so_a_changing_load_cancels():
    ratios_to = _bench_norms().ratios_to
    times = {"ln": [1.0, 4.0, 2.0, 8.0], "bn": [1.2, 4.8, 2.4, 9.6], "none": [0.5, 2.0, 1.0, 4.0]}  # load varies
    assert ratios_to(times, "ln") == {"ln": 1.0, "bn": pytest.approx(1.2), "none": 0.5}


@pytest.mark.slow  # compiles three candidates (~1 min on 2 shared cores)
def test_bn_candidates_agree_with_bn_and_print_both_tables():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bn_candidates.py"), "--batch", "2", "--time", "8", "--dim", "16"]
    r = subprocess.run([*cmd, "--repeats", "2", "--warmup", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]  # the candidates' outputs and gradients are checked first
    per_call = re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \| [0-9.]+ \|$", r.stdout, flags=re.M)
    per_step = re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \|$", r.stdout, flags=re.M)
    assert len(per_call) == 7 and per_call[0] == ("ln", "1.00"), r.stdout
    assert len(per_step) == 5 and per_step[0] == ("ln", "1.000"), r.stdout


def _paper_gpu_hours():
    spec = importlib.util.spec_from_file_location("paper_gpu_hours", ROOT / "benchmarks" / "paper_gpu_hours.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_hour_rescaling_carries_the_measurement_over_to_the_lm_and_ner_models(monkeypatch):
    pgh = _paper_gpu_hours()
    monkeypatch.chdir(ROOT)
    rows = {r["dataset"]: r for r in pgh.rescale(ROOT / "config" / "paper.yaml")[0]}
    for name, row in rows.items():  # models that did not change keep their measured step time
        if not row["changed"]:
            assert row["flop_ratio"] == pytest.approx(1.0) and row["ms"] == row["measured_ms"], name
    assert {n for n, r in rows.items() if r["changed"]} == {"ptb", "wikitext103", "conll2003", "resume"}
    assert rows["wikitext103"]["flop_ratio"] < 0.5  # the adaptive softmax replaces most of a 267k-way softmax
    assert rows["resume"]["ms"] > rows["resume"]["measured_ms"]  # the CRF's sequential loop costs time
    shares = pgh.zipf_shares(267_735, [0, 20_000, 40_000, 200_000, 267_735])
    assert sum(shares) == pytest.approx(1.0) and shares[0] > 0.75
    assert pgh.output_flops(16, 100, {}) == 2 * 16 * 100
    # --measure's stand-in for a stream LM: Zipf-distributed ids, cut as the run cuts it
    from normlab.train import validate
    from normlab.train.families import get_family

    schema = ROOT / "workflows/schemas/config.schema.yaml"
    _, cells, runs = pgh.workflow.load_file(ROOT / "config" / "paper.yaml", schema)
    run = validate(runs["ptb/post/ln/seed1"])
    task = get_family("lm_stream").for_run(pgh.synthetic_like("ptb", run), run)
    ids = task.splits["train"].ids
    assert task.splits["train"].n_segments == 4 and ids.max() < 10_000 and np.mean(ids < 100) > 0.4
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paper_gpu_hours.py"), "--rescale"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0 and "ESTIMATE" in out.stdout and "| wikitext103 | 200,000 | 163.8 |" in out.stdout
