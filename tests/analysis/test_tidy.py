"""normlab collect on real run folders: the engine on synthetic tasks, one diverged and one missing run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from normlab.analysis import tidy
from normlab.cli import main
from normlab.train import train

from .synthetic_tidy import synthetic_tidy

MODEL = {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1, "dropout": 0.0}


def config(task: str, norm: str, **optim) -> dict:
    return {
        "task": task, "seed": 1,
        "data": {"source": "synthetic", "options": {"n_train": 64, "n_valid": 16, "n_test": 16}},
        "model": MODEL | {"norm": norm},
        "optim": {"lr": 3e-3, "warmup_steps": 2, "clip_norm": 1.0, **optim},
        "train": {"max_steps": 10, "max_tokens": 128, "log_every": 5, "tid_every": 5,
                  "threads": 1, "progress": "off"},
    }


def write_probe(probe_dir, with_records: bool) -> None:
    probe_dir.mkdir(parents=True)
    dec, cond = "", ""
    if with_records:
        dec = "".join(json.dumps(dict(module="encoder.layers.0.attn_norm", layer=0, position="attn_norm",
                                      kind="mean_tid", component=c, value=v, std=0.01, n_batches=4,
                                      tokens_per_batch=100.0, method="batch_stats")) + "\n"
                      for c, v in (("observed", 0.2), ("floor", 0.1), ("structure", 0.05), ("lag", 0.05)))
        cond = json.dumps(dict(module="encoder.layers.0.attn_norm", layer=0, position="attn_norm", c50=3.0,
                               c80=9.0, cmax=2.5, dim=16, n_tokens=400)) + "\n"
    (probe_dir / "tid_decomposition.jsonl").write_text(dec)
    (probe_dir / "conditioning.jsonl").write_text(cond)
    (probe_dir / "probe.json").write_text(json.dumps({"status": "ok", "tokens_per_batch": 100.0}))


BENCH = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n" \
        "12.5\t0:00:12\t300.1\t900.0\t250.0\t260.0\t0.1\t0.2\t95.0\t11.0\n" \
        "13.5\t0:00:13\t310.1\t900.0\t250.0\t260.0\t0.1\t0.2\t95.0\t-\n"


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cells = [("classification", "syn_cls", "ln", {}), ("classification", "syn_cls", "bn", {}),
             ("lm", "syn_lm", "none", {"lr": 1e5, "warmup_steps": 0, "clip_norm": 0.0})]
    rows = []
    for task, dataset, norm, optim in cells:
        run_dir, probe_dir = root / dataset / norm, root / "probes" / dataset / norm
        cfg = config(task, norm, **optim)
        if norm == "none":
            cfg["model"]["n_layers"], cfg["train"]["max_steps"] = 2, 40
        train(cfg, run_dir)
        write_probe(probe_dir, with_records=norm == "bn")
        bench = root / f"{dataset}_{norm}.tsv"
        bench.write_text(BENCH)
        rows.append(dict(run_id=f"{dataset}/post/{norm}/seed1", config_name="test", scale="laptop", task=task,
                         dataset=dataset, placement="post", norm=norm, seed=1, grids="rbn", run_dir=str(run_dir),
                         probe_dir=str(probe_dir), benchmark=str(bench), batch_stats=norm == "bn",
                         momentum=0.05 if norm == "bn" else "", warmup_steps=2))
    rows.append(rows[1] | dict(run_id="syn_cls/post/bn/seed2", seed=2, run_dir=str(root / "never_ran"),
                               probe_dir=str(root / "never_probed"), benchmark=""))
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = root / "tidy"
    assert main(["collect", "--manifest", str(manifest), "--out", str(out)]) == 0
    return tidy.read_tidy(out), root


def test_every_table_has_the_contract_columns(collected):
    tables, root = collected
    assert set(tables) == set(tidy.TABLES)
    for name, frame in tables.items():
        assert list(frame.columns) == tidy.columns(name), name
        assert (root / "tidy" / f"{name}.csv").is_file()
    assert not list((root / "tidy").glob(".*tmp"))  # atomic writes leave no temporary files


def test_statuses_and_scores(collected):
    tables, _ = collected
    runs = tables["runs"].set_index("run_id")
    assert runs.loc["syn_lm/post/none/seed1", "status"] == "diverged"  # the huge lr really diverged
    assert runs.loc["syn_lm/post/none/seed1", "diverged_at_step"] > 0
    assert runs.loc["syn_cls/post/bn/seed2", "status"] == "missing"
    assert runs.loc["syn_cls/post/bn/seed2", "primary_metric"] == "accuracy"  # from the dataset's other runs
    assert runs.loc["syn_cls/post/ln/seed1", "status"] == "completed"
    assert runs.loc["syn_lm/post/none/seed1", "primary_metric"] == "ppl"
    assert not runs.loc["syn_lm/post/none/seed1", "higher_is_better"]
    scores = tables["scores"]
    assert set(scores["run_id"]) == {"syn_cls/post/ln/seed1", "syn_cls/post/bn/seed1"}  # no diverged/missing scores
    bn = scores[scores["run_id"] == "syn_cls/post/bn/seed1"]
    assert set(bn["stats"]) == {"population", "batch_stats"} and set(bn["split"]) == {"valid", "test"}
    primary = bn[bn["primary"]]
    assert set(primary["metric"]) == {"accuracy"} and primary["value"].between(0, 1).all()
    final = json.loads((collected[1] / "syn_cls" / "bn" / "final.json").read_text())
    test_acc = primary[(primary["split"] == "test") & (primary["stats"] == "population")]["value"].item()
    assert test_acc == pytest.approx(final["test"]["population"]["accuracy"])


def test_curves_tid_probes_and_benchmarks(collected):
    tables, _ = collected
    curves = tables["curves"]
    diverged = curves[(curves["run_id"] == "syn_lm/post/none/seed1") & (curves["metric"] == "loss")]
    assert diverged["value"].isna().iloc[-1]  # the NaN loss that stopped it is kept
    tid = tables["tid"]
    bn_tid = tid[tid["run_id"] == "syn_cls/post/bn/seed1"]
    assert set(bn_tid["method"]) == {"online"} and (bn_tid["value"] >= 0).all()  # the probe's TID: normlab probe
    assert tid[tid["run_id"] == "syn_cls/post/ln/seed1"].empty
    dec = tables["tid_decomposition"]
    assert set(dec["run_id"]) == {"syn_cls/post/bn/seed1"} and len(dec) == 4  # the empty probe files add nothing
    # an old probe's records (no probe_mode, component `floor`) are read as what they are
    assert set(dec["component"]) == {"observed", "floor_token", "structure", "lag"}
    assert set(dec["probe_mode"]) == {"eval"}
    cond = tables["conditioning"]
    assert sorted(cond["measure"]) == ["c50", "c80", "cmax"] and cond["value"].tolist() == [3.0, 9.0, 2.5]
    assert set(cond["site"]) == {"input"} and not cond["centred"].any()  # the old measure, said so
    runs = tables["runs"].set_index("run_id")
    assert runs.loc["syn_cls/post/bn/seed1", "batch_stats"] and not runs.loc["syn_cls/post/ln/seed1", "batch_stats"]
    bn = runs.loc["syn_cls/post/bn/seed1"]
    assert bn["momentum"] == 0.05 and bn["warmup_steps"] == 2
    assert runs.loc["syn_cls/post/bn/seed1", "tokens_per_batch"] == 100.0
    bench = tables["benchmarks"]
    assert len(bench) == 3 and set(bench["rule"]) == {"train"}  # the missing run has no benchmark
    row = bench.iloc[0]
    assert row["s"] == pytest.approx(13.0) and row["max_rss_mb"] == pytest.approx(305.1)
    assert row["cpu_time_s"] == pytest.approx(11.0)  # '-' is not a number


def test_bad_manifests_are_refused_with_the_fix(tmp_path):
    bad = tmp_path / "m.csv"
    pd.DataFrame([{"run_id": "x"}]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="lacks column"):
        tidy.read_manifest(bad)
    with pytest.raises(FileNotFoundError, match="manifest"):
        tidy.read_manifest(tmp_path / "absent.csv")


def test_a_run_folder_of_another_cell_is_a_wiring_error(collected, tmp_path):
    _, root = collected
    manifest = pd.read_csv(root / "manifest.csv")
    manifest.loc[0, "norm"] = "rbn"  # the folder holds an ln run
    with pytest.raises(ValueError, match="does not belong"):
        tidy.collect(manifest)


def test_old_style_tables_are_read_as_what_they_are(tmp_path):
    """A runs table without batch_stats (before issue 14): derived from the data, never from a list."""
    tables = synthetic_tidy(seeds=(1, 2))
    tables["runs"] = tables["runs"].drop(columns=["batch_stats", "momentum", "warmup_steps"])
    dec = tables["tid_decomposition"].drop(columns=["probe_mode", "momentum"])
    dec["component"] = dec["component"].replace({"floor_token": "floor"})
    dec = dec[dec["component"] != "floor_sentence"]
    tables["tid_decomposition"] = dec
    tables["conditioning"] = tables["conditioning"].drop(columns=["site", "centred"])
    tidy.write_tidy(tables, tmp_path)
    back = tidy.read_tidy(tmp_path)
    runs = back["runs"].drop_duplicates("norm").set_index("norm")["batch_stats"]
    assert runs[["bn", "rbn", "powernorm"]].all() and not runs[["ln", "ln_simple", "adanorm", "none"]].any()
    assert "floor_token" in set(back["tid_decomposition"]["component"])
    notes = " ".join(tidy.limitations(back))
    assert "without dropout" in notes and "no sentence floor" in notes and "old measure" in notes
    assert "baselines" in notes  # not read: none given


def test_committed_tables_get_the_manifest_columns_without_their_run_folders(collected, tmp_path):
    tables, root = collected
    old = tables["runs"].drop(columns=["batch_stats", "momentum", "warmup_steps"])
    old.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["collect", "--manifest", str(root / "manifest.csv"), "--out", str(tmp_path),
                 "--refresh-manifest-columns"]) == 0
    runs = tidy.read_tidy(tmp_path, ("runs",))["runs"].set_index("run_id")
    assert runs.loc["syn_cls/post/bn/seed1", "batch_stats"] and runs.loc["syn_cls/post/bn/seed1", "momentum"] == 0.05
    assert not runs.loc["syn_cls/post/ln/seed1", "batch_stats"] and np.isnan(runs.loc["syn_cls/post/ln/seed1",
                                                                                       "momentum"])


def test_synthetic_fixture_is_schema_complete():
    tables = synthetic_tidy(seeds=(1, 2))
    for name in tidy.TABLES:
        assert list(tables[name].columns) == tidy.columns(name)
        assert len(tables[name]), name
