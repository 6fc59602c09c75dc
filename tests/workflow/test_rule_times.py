"""tools/rule_times.py: per-rule wall times from a Snakemake 9 log (an excerpt of a real run's log)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# two run_config jobs side by side, then one train job (Snakemake 9.27's lines, paths shortened)
LOG = """\
Building DAG of jobs...
Select jobs to execute...
Execute 2 jobs...
[Tue Dec  1 16:38:30 2026]
localrule run_config:
    output: results/configs/a.yaml
    jobid: 142
    resources: tmpdir=/tmp
[Tue Dec  1 16:38:30 2026]
localrule run_config:
    output: results/configs/b.yaml
    jobid: 148
[Tue Dec  1 16:38:31 2026]
Finished jobid: 148 (Rule: run_config)
1 of 3 steps (33%) done
[Tue Dec  1 16:38:33 2026]
Finished jobid: 142 (Rule: run_config)
[Tue Dec  1 16:38:33 2026]
rule train:
    input: results/configs/a.yaml
    jobid: 7
    wildcards: dataset=brown_pos, placement=post, norm=ln, seed=1
[Tue Dec  1 16:39:53 2026]
Finished jobid: 7 (Rule: train)
3 of 3 steps (100%) done
"""


def _tool():
    spec = importlib.util.spec_from_file_location("rule_times", ROOT / "tools" / "rule_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_job_counts_from_its_rule_block_to_its_finished_line():
    times, span = _tool().rule_times(LOG.splitlines())
    assert times == {"run_config": [1.0, 3.0], "train": [80.0]}
    assert span == 83.0


def test_the_table_and_the_errors_for_a_missing_or_foreign_log(tmp_path, capsys):
    tool = _tool()
    (tmp_path / "run.log").write_text(LOG)
    assert tool.main([str(tmp_path / "run.log")]) == 0
    out = capsys.readouterr().out
    assert "| `run_config` | 2 | 4 | 2 |" in out and "| `train` | 1 | 80 | 80 |" in out and "**83 s**" in out
    with pytest.raises(SystemExit, match="cannot read .*missing.log: No such file"):
        tool.main([str(tmp_path / "missing.log")])
    (tmp_path / "other.log").write_text("Building DAG of jobs...\n")  # cut off before any job finished
    with pytest.raises(SystemExit, match="has no finished job"):
        tool.main([str(tmp_path / "other.log")])
