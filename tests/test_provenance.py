"""normlab provenance: what produced the regenerated outputs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from normlab.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path, config="config/test.yaml", marker_age_s=0.0, started=None):
    marker = tmp_path / "claims.md"
    marker.write_text("x")
    started = time.time() - 5 if started is None else started
    os.utime(marker, (started + marker_age_s, started + marker_age_s))
    results = tmp_path / "results"
    (results / "tidy").mkdir(parents=True, exist_ok=True)
    (results / "tidy" / "benchmarks.csv").write_text("run_id,rule,s\na,train,2.0\nb,train,4.0\nc,probe,1.0\n")
    out = tmp_path / "provenance.json"
    rc = main(["provenance", "--config", str(REPO / config), "--started", str(started), "--cores", "2",
               "--results", str(results), "--marker", str(marker), "--out", str(out)])
    return rc, out


def test_provenance_records_commit_config_machine_and_wall_time(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    rc, out = _run(tmp_path, marker_age_s=1.0)
    assert rc == 0
    record = json.loads(out.read_text())
    assert len(record["source"]["commit"]) == 40
    assert record["config"]["name"] == "test" and record["config"]["cells"] == 48
    assert record["machine"]["cpu_count"] >= 1 and record["machine"]["torch"]
    assert 4 <= record["wall_time_s"] < 60 and record["cores"] == 2
    assert record["rule_runtimes"]["train"] == {"jobs": 2, "sum_s": 6.0, "median_s": 3.0, "max_s": 4.0}
    assert record["rule_runtimes"]["probe"]["jobs"] == 1


def test_config_hash_is_stable_and_tells_configurations_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    digests = []
    for i, config in enumerate(["config/test.yaml", "config/test.yaml", "config/default.yaml"]):
        sub = tmp_path / str(i)
        sub.mkdir()
        rc, out = _run(sub, config=config, marker_age_s=1.0)
        assert rc == 0
        digests.append(json.loads(out.read_text())["config"]["resolved_sha256"])
    assert digests[0] == digests[1] != digests[2]


def test_a_run_that_regenerated_nothing_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "provenance.json"
    out.write_text('{"wall_time_s": 1234}\n')
    rc, out = _run(tmp_path, marker_age_s=-60.0)  # the marker predates the run
    assert rc == 0 and json.loads(out.read_text()) == {"wall_time_s": 1234}
    assert "nothing was regenerated" in capsys.readouterr().out


def test_an_analysis_rerun_keeps_the_runs_record_and_adds_its_commit(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    rc, out = _run(tmp_path, marker_age_s=1.0)
    first = json.loads(out.read_text())
    marker = tmp_path / "claims.md"
    started = time.time() - 2
    os.utime(marker, (started + 1, started + 1))
    rc = main(["provenance", "--config", str(REPO / "config/test.yaml"), "--started", str(started),
               "--marker", str(marker), "--out", str(out), "--analysis-only"])
    again = json.loads(out.read_text())
    assert rc == 0 and again["wall_time_s"] == first["wall_time_s"]
    assert again["analysis_rerun"]["commit"] == first["source"]["commit"]
    assert 0 <= again["analysis_rerun"]["wall_time_s"] < 60


def test_a_workflow_that_did_not_finish_or_a_missing_record_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "provenance.json"
    common = ["provenance", "--config", str(REPO / "config/test.yaml"), "--started", str(time.time()),
              "--out", str(out)]
    assert main([*common, "--marker", str(tmp_path / "absent.md")]) == 2
    assert "did the workflow finish" in capsys.readouterr().err and not out.exists()
    marker = tmp_path / "claims.md"
    marker.write_text("x")
    os.utime(marker, (time.time() + 5, time.time() + 5))
    assert main([*common, "--marker", str(marker), "--analysis-only"]) == 2
    assert "--analysis-only needs" in capsys.readouterr().err and not out.exists()


def test_an_overlay_config_is_merged_as_snakemake_merges_configfiles():
    from normlab.provenance import config_digest

    full = config_digest(REPO / "config/scale.yaml")
    seed1 = config_digest([REPO / "config/scale.yaml", REPO / "config/scale_seed1.yaml"])
    assert (full["cells"], seed1["cells"]) == (243, 81) and full["resolved_sha256"] != seed1["resolved_sha256"]
    assert seed1["path"].endswith("config/scale.yaml + " + str(REPO / "config/scale_seed1.yaml"))
