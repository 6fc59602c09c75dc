"""A training job on two processes through the workflow's own `train` rule, on the CPU: a setting with
`gpus: 2` runs `torchrun --standalone --nproc_per_node 2` (gloo without CUDA), and its final.json says
world_size 2.  Real corpus (wnut16, from the repository's data_cache/ or fetched), so `slow` + `network`."""

from __future__ import annotations

import json

import pytest
import yaml

from normlab.workflow import PATHS, Cell

from .snakemake_run import ROOT, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.network]


def test_a_two_gpu_setting_trains_with_torchrun_through_the_rule_on_the_cpu(tmp_path):
    raw = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config = {
        "name": "ddp", "scale": "test: two processes", "seeds": [1], "data_cache": str(ROOT / "data_cache"),
        "run_defaults": raw["run_defaults"] | {"train": {**raw["run_defaults"]["train"], "max_steps": 20}},
        "datasets": {"wnut16": {**raw["datasets"]["wnut16"], "gpus": 2}},
        "grids": {"bn_rbn": {"datasets": ["wnut16"], "placements": ["post"], "norms": ["ln", "bn"]}},
        "resources": {"default": {"threads": 1}},
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    cells = [Cell("wnut16", "post", norm, 1) for norm in ("ln", "bn")]
    targets = [f"{PATHS.of('run_dir', c)}/final.json" for c in cells]
    r = snakemake(*targets, "--cores", "2", "-p", "--configfile", str(path), workdir=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert r.stdout.count("torchrun --standalone --nproc_per_node 2 -m normlab train") + r.stderr.count(
        "torchrun --standalone --nproc_per_node 2 -m normlab train") == 2
    for cell in cells:
        final = json.loads((tmp_path / PATHS.of("run_dir", cell) / "final.json").read_text())
        assert final["status"] == "completed" and final["world_size"] == 2 and final["steps"] == 20
        assert final["device"] == "cpu"
        # BN: each process normalises with its own batch (the default, as the authors); LN has none
        assert final["bn_sync"] is (False if cell.norm == "bn" else None)
