"""The table of bad inputs (issue 16, items 6, 7 and 9): each row is an input, the exit code of
`normlab train` (2: a one-line error; 0 where a warning is right) and a fragment of its message.
Then the same checks at workflow parse time, from the data card of a prepared dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from normlab import workflow
from normlab.cli import main
from normlab.train import fit as fit_mod
from normlab.train import train, validate
from normlab.train.families import get_family
from normlab.train.tasks import from_normlab_data

from .conftest import TINY_FAMILIES, run_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflows/schemas/config.schema.yaml"


@dataclass
class Case:
    """Builds one bad input in ``tmp`` (prepared tiny datasets in ``cache``); returns `normlab train`'s
    arguments after ``train``."""

    tmp: Path
    cache: Path

    def config(self, task="tagging", raw=None, **sections) -> Path:
        """A run config file: ``run_config(task, **sections)``, its ``data`` section replaced, not merged."""
        if raw is None:
            raw = run_config(task, **{k: v for k, v in sections.items() if k != "data"})
            raw["data"] = sections.get("data", raw["data"])
        path = self.tmp / "run.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def data(self, name, **options) -> dict:
        return {"source": "normlab", "name": name, "options": {"cache": str(self.cache), **options}}

    def args(self, config: Path, out: Path | None = None, *extra) -> list[str]:
        return ["--config", str(config), "--out", str(out or self.tmp / "out"), *extra]

    def run(self, task="tagging", **sections) -> list[str]:
        return self.args(self.config(task, **sections))

    def stopped_run(self, damage, **changes) -> list[str]:
        """A run stopped at step 20 (its last checkpoint) with ``damage(out)`` done to its folder; --resume
        with its config (``changes``: with those changed)."""
        cfg = run_config("classification", train={"max_steps": 40, "checkpoint_every": 10})
        out = self.tmp / "out"
        train(cfg, out, stop_at_step=20)
        damage(out)
        return self.args(self.config(raw={**cfg, **changes}), out, "--resume")


def mount_tmpfs(path: Path, options: str) -> Path:
    """A tmpfs at ``path`` (root only); skips the row where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                           capture_output=True).returncode:
        pytest.skip("needs root and mount(8) for a tmpfs")
    return path


def read_only_out(c: Case) -> list[str]:
    """A read-only --out, with a dataset that is not prepared: the write check comes before the data."""
    if os.geteuid() == 0:
        parent = mount_tmpfs(c.tmp / "ro", "ro,size=64k")  # root writes through chmod: a read-only mount
    else:
        parent = c.tmp / "ro"
        parent.mkdir()
        parent.chmod(0o555)
    config = c.config(data={"source": "normlab", "name": "wnut16", "options": {"cache": str(c.tmp / "empty")}})
    return c.args(config, parent / "run")


def full_disk(c: Case) -> list[str]:
    """--out on a 160 kB file system: the config and logs fit, the first checkpoint does not."""
    disk = mount_tmpfs(c.tmp / "full", "size=160k")
    return c.args(c.config("classification", train={"max_steps": 20, "checkpoint_every": 10}), disk / "run")


def locked_out(c: Case) -> list[str]:
    """--out whose lock a live process holds (a plain flock holder, standing in for a running job)."""
    out = c.tmp / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, socket, sys, time\n"
         f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, f'{os.getpid()} {socket.gethostname()}'.encode())\n"
         "print('locked', flush=True)\n"
         "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    c.holders.append(holder)
    return c.run("classification") + ["--resume"]


def cut_last_line_of(name: str, keep: int):
    def damage(out: Path):
        lines = (out / name).read_text().splitlines()
        (out / name).write_text("\n".join(lines[:keep] + [lines[keep][:12]] + lines[keep + 1:]) + "\n")
    return damage


def append_to(name: str, text: str):
    def damage(out: Path):
        with open(out / name, "a") as f:
            f.write(text)
    return damage


def overwrite(path: str, data: bytes | None = None, cut: int | None = None):
    def damage(out: Path):
        target = out / path
        target.write_bytes(data if data is not None else target.read_bytes()[:cut])
    return damage


def row(name, make, code, fragment, marks=()):
    return pytest.param(make, code, fragment, id=name, marks=marks)


WNUT_UNPREPARED = {"source": "normlab", "name": "wnut16", "options": {"cache": "/nonexistent/normlab_cache"}}
S = "synthetic"

# row(id, input -> `normlab train` arguments, exit code, message fragment)
TABLE = [
    # --- data.* ------------------------------------------------------------------------------------
    row("unknown dataset", lambda c: c.run(data={"source": "normlab", "name": "imbd"}), 2,
        "data.name: 'imbd' is not a registered dataset; valid values: fashion_mnist, bible_es_en"),
    row("unknown data option", lambda c: c.run(data=c.data("tiny_tagging", max_exmples=5)), 2,
        "data.options: unknown key(s) max_exmples for task 'tagging'; valid: cache, max_examples, max_eval_examples, "
        "max_len, length_range"),
    row("max_examples 0", lambda c: c.run(data=c.data("tiny_tagging", max_examples=0)), 2,
        "data.options.max_examples: 0 is less than the minimum of 1"),
    row('max_examples "ten"', lambda c: c.run(data=c.data("tiny_tagging", max_examples="ten")), 2,
        "data.options.max_examples: 'ten' has the wrong type; expected ['integer', 'null']"),
    row("max_examples -3", lambda c: c.run(data=c.data("tiny_tagging", max_examples=-3)), 2,
        "data.options.max_examples: -3 is less than the minimum of 1"),
    row("max_eval_examples 1.5", lambda c: c.run(data=c.data("tiny_tagging", max_eval_examples=1.5)), 2,
        "data.options.max_eval_examples: 1.5 has the wrong type"),
    row("max_len -1", lambda c: c.run(data=c.data("tiny_tagging", max_len=-1)), 2,
        "data.options.max_len: -1 is less than the minimum of 1"),
    row("max_len of translation (never applied)", lambda c: c.run(
           "translation", data=c.data("tiny_translation", max_len=8)), 2,
        "data.options: unknown key(s) max_len for task 'translation'"),
    row("length_range of images", lambda c: c.run("image", data=c.data("tiny_image", length_range=[1, 4])), 2,
        "data.options: unknown key(s) length_range for task 'image'"),
    row("augment of text", lambda c: c.run(data=c.data("tiny_tagging", augment={"flip": True})), 2,
        "data.options: unknown key(s) augment for task 'tagging'"),
    row("augment crop_padding -1", lambda c: c.run("image", data=c.data("tiny_image", augment={"crop_padding": -1})),
        2, "data.options.augment.crop_padding: -1 is less than the minimum of 0"),
    row("augment unknown key", lambda c: c.run("image", data=c.data("tiny_image", augment={"padding": 4})), 2,
        "unknown key(s) data.options.augment.padding; valid keys: crop_padding, flip"),
    row("length_range reversed", lambda c: c.run(data=c.data("tiny_tagging", length_range=[9, 3])), 2,
        "data.options.length_range [9, 3]: give [min, max] with min <= max"),
    row("length_range one number", lambda c: c.run(data=c.data("tiny_tagging", length_range=[3])), 2,
        "data.options.length_range: [3] is too short"),
    row("length_range from 0", lambda c: c.run(data=c.data("tiny_tagging", length_range=[0, 3])), 2,
        "data.options.length_range.0: 0 is less than the minimum of 1"),
    row("length_range keeps nothing", lambda c: c.run(data=c.data("tiny_tagging", length_range=[50, 60])), 2,
        "dataset 'tiny_tagging': no train examples left with data.options"),
    row("dataset not prepared (missing cache)", lambda c: c.run(data=WNUT_UNPREPARED), 2,
        "dataset 'wnut16' is not prepared in the data cache /nonexistent/normlab_cache (data.options.cache): run "
        "`normlab prepare wnut16 --cache /nonexistent/normlab_cache`"),
    row("dataset of another task", lambda c: c.run("classification", data=c.data("tiny_tagging")), 2,
        "task: 'classification', but data.name 'tiny_tagging' is a 'tagging' dataset: set task: tagging"),
    row("data.name missing", lambda c: c.run(data={"source": "normlab"}), 2,
        "data.name is required when data.source is 'normlab'"),
    row("synthetic unknown option", lambda c: c.run(data={"source": S, "options": {"n_dev": 5}}), 2,
        "data.options: unknown key(s) n_dev for data.source 'synthetic'; valid: n_train, n_valid, n_test"),
    row("synthetic min_len above max_len", lambda c: c.run(data={"source": S, "options": {"min_len": 9, "max_len": 4}}),
        2, "data.options.min_len=9 is above data.options.max_len=4"),
    row("synthetic n_train 0", lambda c: c.run(data={"source": S, "options": {"n_train": 0}}), 2,
        "data.options.n_train: 0 is less than the minimum of 1"),
    # --- numbers -----------------------------------------------------------------------------------
    row("lr .inf", lambda c: c.run(optim={"lr": float("inf")}), 2, "optim.lr: inf is not a finite number"),
    row("lr .nan", lambda c: c.run(optim={"lr": float("nan")}), 2, "optim.lr: nan is not a finite number"),
    row("betas with nan", lambda c: c.run(optim={"betas": [0.9, float("nan")]}), 2,
        "optim.betas[1]: nan is not a finite number"),
    row("norm option -inf", lambda c: c.run(model={"norm": "bn", "norm_options": {"momentum": float("-inf")}}), 2,
        "model.norm_options.momentum: -inf is not a finite number"),
    # --- where it runs -----------------------------------------------------------------------------
    row("device cuda without CUDA", lambda c: c.run(train={"device": "cuda"}), 2,
           "train.device is 'cuda' but this machine has no usable CUDA device",
           marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    # --- --config ----------------------------------------------------------------------------------
    row("--config a folder", lambda c: c.args(c.tmp), 2, "is a folder; give the YAML file"),
    row("--config a binary file", lambda c: c.args(binary(c.tmp)), 2, "is not a text file; give the YAML run config"),
    row("--config empty", lambda c: c.args(text(c.tmp, "")), 2,
        "is not a mapping of sections (task, data, model, ...); it holds nothing"),
    row("--config a list", lambda c: c.args(text(c.tmp, "- task\n")), 2, "it holds list"),
    row("--config not YAML", lambda c: c.args(text(c.tmp, "task: [tagging\n")), 2,
        "is not valid YAML (line 2, column 1)"),
    row("--config missing", lambda c: c.args(c.tmp / "nope.yaml"), 2, "nope.yaml does not exist"),
    # --- --out -------------------------------------------------------------------------------------
    row("--out a file", lambda c: c.args(c.config(), text(c.tmp, "x", "file")), 2, "exists and is not a folder"),
    row("--out with files, no --resume", lambda c: c.args(c.config(), text(c.tmp / "out", "x", "notes.txt").parent), 2,
        "already has files; pass --resume to continue that run, or choose a new --out"),
    row("--out read-only (before the data loads)", read_only_out, 2, "cannot write .lock in "),
    row("--out on a full disk", full_disk, 2,
        "no space left on device (ENOSPC); free space there or write somewhere else"),
    row("--out written by a live process", locked_out, 2, "is being written by another normlab train (pid "),
    # --- --resume ----------------------------------------------------------------------------------
    row("resume with another config", lambda c: c.stopped_run(lambda out: None, seed=99), 2,
           "--resume: the config differs from the one"),
    row("resume, last.pt cut short", lambda c: c.stopped_run(overwrite("checkpoints/last.pt", cut=5000)), 2,
        "checkpoints/last.pt is damaged and cannot be loaded (OSError"),
    row("resume, last.pt not a checkpoint", lambda c: c.stopped_run(overwrite("checkpoints/last.pt", b"garbage\n")), 2,
        "checkpoints/last.pt is damaged and cannot be loaded (ValueError: invalid literal for int() with base 10: "
        "'arbage\\n'); delete "),
    row("resume, last.pt empty", lambda c: c.stopped_run(overwrite("checkpoints/last.pt", b"")), 2,
        "rerun with --restart-if-changed (which clears it)"),
    row("resume, a metrics line damaged mid-file", lambda c: c.stopped_run(cut_last_line_of("metrics.jsonl", 0)), 2,
        "metrics.jsonl line 1 is not a JSON record: the file is damaged; delete "),
    row("resume, a damaged metrics line, --restart-if-changed (a warning)", lambda c: c.stopped_run(
        cut_last_line_of("metrics.jsonl", 0)) + ["--restart-if-changed"], 0,
        "held a run that cannot resume (TMP/out/metrics.jsonl line 1 is not a JSON record: the file is damaged); "
        "cleared it and starting afresh"),
    row("resume, final.json damaged", lambda c: c.stopped_run(append_to("final.json", '{"status": "compl')), 2,
        "final.json is not valid JSON: the file is damaged; delete "),
    row("resume, torn last metrics line (a warning)", lambda c: c.stopped_run(
           append_to("metrics.jsonl", '{"step": 30, "kind": "tr')), 0,
        "warning: dropped the torn last line of "),
    # --- the data does not fit the model (checked at the job's start; at parse time: below) ----------
    row("patch size does not divide the image", lambda c: c.run(
           "image", model={"patch_size": 3}, data={"source": S, "options": {"image_size": 8}}), 2,
        "model.patch_size=3 does not divide the 8x8 images of the synthetic task: choose one of 1, 2, 4, 8"),
    row("patch size, prepared images", lambda c: c.run("image", model={"patch_size": 3}, data=c.data("tiny_image")), 2,
        "model.patch_size=3 does not divide the 8x8 images of 'tiny_image'"),
    row("max_tokens below the longest example", lambda c: c.run(
           "classification", train={"max_tokens": 8}, data={"source": S, "options": {"max_len": 12}}), 2,
        "train.max_tokens=8 is below the longest train example of the synthetic task (12 tokens with padding): "
        "raise train.max_tokens to at least 12"),
    row("max_tokens below, prepared text", lambda c: c.run(train={"max_tokens": 5}, data=c.data("tiny_tagging")), 2,
        "train.max_tokens=5 is below the longest train example of 'tiny_tagging' (9 tokens with padding): raise "
        "train.max_tokens to at least 9 or cut the examples shorter with data.options.max_len"),
    row("eval.max_tokens below", lambda c: c.run(eval={"max_tokens": 3}, data=c.data("tiny_tagging", max_len=4)), 2,
           "eval.max_tokens=3 is below the longest valid example of 'tiny_tagging' (4 tokens with padding)"),
]


def binary(tmp: Path) -> Path:
    path = tmp / "model.bin"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def text(folder: Path, content: str, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(content)
    return folder / name


@pytest.fixture
def case(tmp_path, tiny_datasets):
    c = Case(tmp_path, tiny_datasets)
    c.holders = []
    yield c
    for holder in c.holders:
        holder.kill()
        holder.wait()
    for mount in (tmp_path / "ro", tmp_path / "full"):
        if mount.is_mount():
            subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize(("make", "code", "fragment"), TABLE)
def test_bad_input_exits_with_one_line_naming_the_problem_and_the_fix(make, code, fragment, case, capfd):
    args = make(case)
    capfd.readouterr()
    assert main(["train", *args]) == code
    err = capfd.readouterr().err.replace(str(case.tmp), "TMP")
    assert fragment in err, err
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("normlab train: "), err


# --- the same checks at workflow parse time, from the data card ------------------------------------

def workflow_config(cache: Path, datasets: dict) -> dict:
    """A one-cell-per-dataset workflow config over the tiny prepared datasets."""
    return {
        "name": "tiny", "scale": "tiny test grid", "data_cache": str(cache), "seeds": [1],
        "run_defaults": {"model": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
                         "train": {"max_steps": 4, "log_every": 2, "max_tokens": 64, "batch_size": 8,
                                   "progress": "off", "threads": 1}},
        "datasets": datasets,
        "grids": {"g": {"datasets": list(datasets), "placements": ["post"], "norms": ["ln"]}},
    }


# the cell's data does not fit its model: refused by the card at parse time, and by the job at its start
DOES_NOT_FIT = [
    pytest.param({"tiny_image": {"model": {"patch_size": 3}}},
                 "model.patch_size=3 does not divide the 8x8 images of 'tiny_image': choose one of 1, 2, 4, 8",
                 id="patch size"),
    pytest.param({"tiny_tagging": {"train": {"max_tokens": 5}}},
                 "train.max_tokens=5 is below the longest train example of 'tiny_tagging' (9 tokens with padding)",
                 id="max_tokens"),
    pytest.param({"tiny_lm": {"train": {"max_tokens": 4}, "data_options": {"max_examples": 5}}},
                 "train.max_tokens=4 is below the longest train example of 'tiny_lm' (6 tokens with padding)",
                 id="max_tokens, first 5 examples (LM: <eos> dropped, BOS added)"),
    pytest.param({"tiny_translation": {"eval": {"max_tokens": 4}}},
                 "eval.max_tokens=4 is below the longest valid example of 'tiny_translation'", id="eval.max_tokens"),
]
# refused by the workflow schema or the per-cell run-config check, before any card is read
BAD_OPTIONS = [
    pytest.param({"tiny_tagging": {"data_options": {"max_examples": 0}}},
                 "datasets.tiny_tagging.data_options.max_examples: 0 is less than the minimum of 1",
                 id="max_examples 0"),
    pytest.param({"tiny_tagging": {"data_options": {"max_exmples": 5}}},
                 "unknown key(s) datasets.tiny_tagging.data_options.max_exmples", id="unknown option"),
    pytest.param({"tiny_translation": {"data_options": {"max_len": 8}}},
                 "grid cell tiny_translation/post/ln/seed1 (grids: g) cannot run: data.options: unknown key(s) max_len "
                 "for task 'translation'", id="max_len of translation"),
]


@pytest.mark.parametrize(("datasets", "fragment"), DOES_NOT_FIT + BAD_OPTIONS)
def test_a_cell_whose_data_does_not_fit_fails_at_parse_time(datasets, fragment, tiny_datasets):
    with pytest.raises(workflow.WorkflowConfigError) as err:
        workflow.load(workflow_config(tiny_datasets, datasets), SCHEMA)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("datasets", "fragment"), DOES_NOT_FIT)
def test_without_a_card_the_job_refuses_the_cell_at_its_start_with_the_same_message(datasets, fragment,
                                                                                     tiny_datasets, tmp_path, capfd):
    """Not prepared yet at parse time (no card): the workflow accepts the cell; the job then checks the
    loaded data before any training, with the same message."""
    cache = tmp_path / "cache"
    for name in datasets:
        shutil.copytree(tiny_datasets / "prepared" / name, cache / "prepared" / name)
        (cache / "prepared" / name / "card.json").unlink()
    _, _, runs = workflow.load(workflow_config(cache, datasets), SCHEMA)
    (run,) = runs.values()
    config = tmp_path / "run.yaml"
    config.write_text(workflow.run_config_yaml(run))
    capfd.readouterr()
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"normlab train: {fragment}") and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "config.yaml").exists()  # refused before anything was written


def test_a_cell_that_fits_because_of_its_example_limit_is_not_refused(tiny_datasets, tmp_path):
    """The longest of the first 5 examples (5 words) fits max_tokens 5, though the split's longest (9) does not."""
    datasets = {"tiny_tagging": {"train": {"max_tokens": 5}, "eval": {"max_tokens": 64},
                                 "data_options": {"max_examples": 5}}}
    _, _, runs = workflow.load(workflow_config(tiny_datasets, datasets), SCHEMA)
    assert train(next(iter(runs.values())), tmp_path / "out")["status"] == "completed"


OPTION_SETS = [{}, {"max_examples": 5}, {"max_examples": 7, "max_eval_examples": 3}, {"max_len": 4},
               {"max_examples": 20, "max_len": 6}, {"max_eval_examples": 1}]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_the_card_tells_what_the_loaded_data_does(family, tiny_datasets):
    """fit.card_facts (parse time) equals fit.task_facts (the job) for every family and example limit."""
    name = f"tiny_{family}"
    card = json.loads((tiny_datasets / "prepared" / name / "card.json").read_text())
    accepted = get_family(family).data_options
    for options in OPTION_SETS:
        if not set(options) <= set(accepted):
            continue
        cfg = validate(run_config(family) | {"data": {"source": "normlab", "name": name,
                                                      "options": {"cache": str(tiny_datasets), **options}}})
        task = from_normlab_data(family, name, cfg["data"]["options"])
        assert fit_mod.card_facts(cfg, card) == fit_mod.task_facts(task), options
