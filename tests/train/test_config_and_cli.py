"""Bad run configs fail before training and name the key and the valid values; the CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from normlab.train import ConfigError, OutputExistsError, train, validate


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"nrom": "bn"}}, r"unknown key\(s\) model\.nrom; valid keys: .*norm"),
        ({"colour": 1}, r"unknown key\(s\) colour; valid keys: .*model"),
        ({"train": {"max_steps": "ten"}}, r"train\.max_steps: 'ten' has the wrong type; expected integer"),
        ({"model": {"norm": "batchnorm"}}, r"model\.norm: 'batchnorm' is not valid; valid values: ln, .*rbn"),
        (
            {"model": {"norm": "bn", "norm_options": {"momentun": 0.1}}},
            r"model\.norm_options: norm 'bn' does not take option\(s\) momentun; valid options: momentum",
        ),
        ({"model": {"norm": "powernorm", "norm_options": {"groups": 3}}}, r"model\.norm_options: .*groups"),
        ({"model": {"norm_scope": "encoder"}}, r"model\.norm_scope: 'encoder' needs an encoder-decoder"),
        (
            {"model": {"placement": "middle"}},
            r"model\.placement: 'middle' is not valid; valid values: post, pre",
        ),
        ({"seed": 1.5}, r"seed: 1.5 has the wrong type; expected integer"),
        ({"model": {"n_heads": 3}}, r"model\.d_model=32 must be a multiple of model\.n_heads=3"),
        ({"model": {"final_norm_options": {"eps": 1e-3}}}, r"model\.final_norm_options apply to a named"),
        ({"train": {"tid_probe_batches": 4}}, r"unknown key\(s\) train\.tid_probe_batches"),
    ],
)
def test_bad_configs_fail_before_training(change, message, make_config, tmp_path):
    cfg = make_config("classification", **change)
    with pytest.raises(ConfigError, match=message):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_resolved_config_states_powernorms_defaults(make_config, tmp_path):
    """groups = n_heads and warmup_iters = optim.warmup_steps (PowerNorm's authors), explicit options win,
    for the studied norm and a named final norm alike; config.yaml of the run states the values used."""
    cfg = validate(make_config("classification", model={"norm": "powernorm"}))
    assert cfg["model"]["norm_options"] == {"groups": 2, "warmup_iters": 10}
    assert validate(cfg) == cfg
    own = validate(make_config("classification", model={"norm": "powernorm", "norm_options": {"warmup_iters": 3}},
                               optim={"warmup_steps": 50}))
    assert own["model"]["norm_options"] == {"groups": 2, "warmup_iters": 3}
    final = validate(make_config("lm", model={"norm": "bn", "placement": "pre", "final_norm": "powernorm"}))
    assert final["model"]["norm_options"] == {} and final["model"]["final_norm_options"] == {
        "groups": 2, "warmup_iters": 10}
    train(make_config("classification", model={"norm": "powernorm"}, train={"max_steps": 10}), tmp_path / "run")
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["model"]["norm_options"] == {"groups": 2, "warmup_iters": 10}


def test_an_unknown_task_names_the_valid_ones(make_config, tmp_path):
    with pytest.raises(ConfigError, match=r"task: 'speech' is not valid; valid values: translation, lm"):
        train(make_config("speech"), tmp_path / "run")


def test_an_existing_output_folder_is_never_overwritten(make_config, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="--resume"):
        train(make_config("classification"), out)
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_an_empty_output_folder_is_fine(make_config, tmp_path):
    (tmp_path / "run").mkdir()  # Snakemake creates output folders before the job runs
    assert (
        train(make_config("classification", train={"max_steps": 10}), tmp_path / "run")["status"]
        == "completed"
    )


def test_resume_with_another_config_is_refused(make_config, tmp_path):
    cfg = make_config("classification", train={"max_steps": 20, "checkpoint_every": 10})
    train(cfg, tmp_path / "run", stop_at_step=10)
    with pytest.raises(ConfigError, match="differs from the one"):
        train({**cfg, "seed": 99}, tmp_path / "run", resume=True)


def test_restart_if_changed_clears_a_folder_of_another_config_and_starts_afresh(make_config, tmp_path):
    cfg = make_config("classification", train={"max_steps": 20, "checkpoint_every": 10})
    train(cfg, tmp_path / "run", stop_at_step=10)
    (tmp_path / "run" / "notes.txt").write_text("not the engine's")
    other = {**cfg, "seed": 99}
    final = train(other, tmp_path / "run", resume=True, restart_if_changed=True)
    fresh = train(other, tmp_path / "fresh")
    assert final["status"] == "completed" and final["seed"] == 99
    assert final["test"] == fresh["test"]  # a fresh run, not a resumed one of the old config
    assert (tmp_path / "run" / "notes.txt").exists()  # only the engine's own files are cleared


def normlab_train(*args):
    return subprocess.run(
        [sys.executable, "-m", "normlab.cli", "train", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_runs_refuses_an_existing_folder_and_reports_divergence(make_config, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(make_config("tagging", train={"max_steps": 10})))
    done = normlab_train("--config", config, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "final.json").read_text())["status"] == "completed"
    again = normlab_train("--config", config, "--out", tmp_path / "out")
    assert again.returncode == 2 and "already has files" in again.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(make_config("tagging", model={"nrom": "bn"})))
    failed = normlab_train("--config", bad, "--out", tmp_path / "bad")
    assert failed.returncode == 2 and "model.nrom" in failed.stderr

    boom = tmp_path / "boom.yaml"
    boom.write_text(
        yaml.safe_dump(
            make_config(
                "lm",
                model={"norm": "none", "n_layers": 2},
                optim={"lr": 1e5, "warmup_steps": 0, "clip_norm": 0.0},
                train={"max_steps": 100},
            )
        )
    )
    diverged = normlab_train("--config", boom, "--out", tmp_path / "boom", "--fail-on-divergence")
    assert diverged.returncode == 3 and "diverged" in diverged.stderr
