"""benchmarks/device_check.py: its tiny CPU mode runs every section and writes the tidy file; its
equality check fails when a target is off (docs/device_check.md)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from normlab.norms import NORMS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import device_check  # noqa: E402

sys.path.pop(0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_check")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/device_check.py"), "--tiny", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with open(out / "device_check.csv") as f:
        rows = list(csv.DictReader(f))
    return r.stdout, rows, json.loads((out / "device_check.json").read_text())


def test_the_tiny_mode_checks_every_norm_on_every_target_and_passes(tiny):
    _, rows, _ = tiny
    eq = [r for r in rows if r["section"] == "equality"]
    quantities = {"forward", "backward_input", "backward_params", "running_stats", "eval_forward"}
    assert {(r["norm"], r["target"], r["quantity"]) for r in eq} == {
        (n, t, q) for n in NORMS for t in ("cpu/fp32", "cpu/bf16") for q in quantities}
    assert all(r["passed"] == "True" for r in eq)
    fp32 = [float(r["value"]) for r in eq if r["target"] == "cpu/fp32"]
    assert max(fp32) < 1e-5  # fp32 against float64: rounding only
    bf16 = [float(r["value"]) for r in eq if r["target"] == "cpu/bf16" and r["quantity"] == "forward"]
    assert max(bf16) > 1e-4  # bf16 is visibly not fp32: the autocast path ran


def test_the_tiny_mode_times_the_norms_and_the_training_step_as_ratios_to_ln(tiny):
    stdout, rows, meta = tiny
    times = [r for r in rows if r["section"] == "norm_time" and r["metric"] == "ratio_to_ln"]
    assert {(r["norm"], r["precision"]) for r in times} == {
        (n, p) for n in ("ln", "bn", "rbn", "dyt") for p in ("fp32", "bf16")}
    assert all(float(r["value"]) == 1.0 for r in times if r["norm"] == "ln")
    steps = [r for r in rows if r["section"] == "train_step" and r["metric"] == "target_tokens_per_s"]
    assert {(r["norm"], r["precision"], r["compiled"]) for r in steps} == {
        (n, p, "False") for n in ("ln", "bn", "rbn") for p in ("fp32", "bf16")} | {("ln", "fp32", "True")}
    assert all(float(r["value"]) > 0 for r in steps)
    env = meta["environment"]
    assert env["mode"] == "tiny" and env["settings"]["compile_backend"] == "eager" and env["wall_s"] > 0
    assert len(meta["rows"]) == len(rows)
    assert "all equality checks passed" in stdout and "| train_step | precision | compiled |" in stdout


def test_a_target_outside_its_tolerance_fails_the_check(monkeypatch):
    monkeypatch.setattr(device_check, "TOLERANCE", {"fp32": 0.0, "bf16": 0.0})
    rows = device_check.equality((2, 4, 8), torch.device("cpu"))
    failed = {r["norm"] for r in rows if not r["passed"]}
    assert {"ln", "bn", "rbn"} <= failed  # rounding is never exactly zero
    identity = {r["quantity"]: r["passed"] for r in rows if r["norm"] == "none" and r["target"] == "cpu/bf16"}
    assert identity["forward"]  # the identity on bf16-exact inputs is exact: the comparison itself adds nothing


def test_max_rel_error_is_relative_to_the_largest_reference_value():
    ref = [torch.tensor([10.0, -20.0]), torch.tensor([0.0])]
    got = [torch.tensor([10.0, -19.0]), torch.tensor([0.5])]
    assert device_check.max_rel_error(got, ref) == pytest.approx(1.0 / 20.0)
    assert device_check.max_rel_error([], []) == 0.0
