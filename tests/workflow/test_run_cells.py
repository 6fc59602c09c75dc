"""tools/run_cells.py: the commands it runs are the rules' (as `snakemake -n -p` prints them), and a cell
whose run and probe are done is skipped."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from normlab import workflow
from normlab.workflow import PATHS

from .snakemake_run import ROOT, snakemake

TOOL = ROOT / "tools/run_cells.py"


def overlay(tmp_path, **datasets_gpus) -> str:
    """config/test.yaml with an absolute data cache under tmp_path and ``gpus`` for some datasets."""
    raw = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    raw["data_cache"] = str(tmp_path / "cache")
    for name, n in datasets_gpus.items():
        raw["datasets"][name]["gpus"] = n
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def run_cells(config: str, cwd, *args: str) -> list[str]:
    r = subprocess.run([sys.executable, str(TOOL), "--configfile", config, "--dry-run", *args], cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.splitlines()


def rule_commands(config: str, workdir) -> list[str]:
    """The train and probe jobs' shell commands of a dry run, without their log redirection."""
    r = snakemake("-n", "-p", "--configfile", config, workdir=workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    commands = re.findall(r"(?m)^Shell command: (.*)$", r.stdout + r.stderr)
    stripped = [re.sub(r" > \S+ 2>&1$", "", c) for c in commands]
    return [c for c in stripped if re.search(r" -m normlab (train|probe) ", c)]


def test_its_commands_are_the_rules_commands_torchrun_included(tmp_path):
    config = overlay(tmp_path, wnut16=2)
    ours = run_cells(config, tmp_path)
    cfg, cells, _ = workflow.load_file(config, ROOT / "workflows/schemas/config.schema.yaml")
    assert len(ours) == 2 * len(cells)
    assert sorted(ours) == sorted(rule_commands(config, tmp_path))
    torchrun = [c for c in ours if "torchrun --standalone --nproc_per_node 2 -m normlab train" in c]
    assert len(torchrun) == sum(c.corpus == "wnut16" for c in cells) > 0


def test_a_cell_whose_run_and_probe_are_done_is_skipped(tmp_path):
    config = overlay(tmp_path)
    cfg, cells, _ = workflow.load_file(config, ROOT / "workflows/schemas/config.schema.yaml")
    work = tmp_path / cfg["workdir"]
    finished, half_done = cells[0], cells[1]
    done = {finished: ("run_dir/final.json", "probe_dir/probe.json"), half_done: ("run_dir/final.json",)}
    for cell, files in done.items():
        for item in files:
            key, name = item.split("/")
            path = work / PATHS.of(key, cell) / name
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"status": "completed"}))
    ours = run_cells(config, tmp_path)
    assert len(ours) == 2 * (len(cells) - 1)
    assert not [c for c in ours if f" {PATHS.of('run_dir', finished)} " in c]
    # the run is done but not its probe: run_cells runs the cell (train --resume returns at once)
    assert len([c for c in ours if f" {PATHS.of('run_dir', half_done)} " in c]) == 2
    assert not (work / "results" / "configs").exists()  # a dry run writes nothing
