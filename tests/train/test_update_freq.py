"""Gradient accumulation (`train.update_freq`) as fairseq's --update-freq.

One update on batches A and B sums their target-summed losses (and RBN penalties) and divides by the
targets of both, so for LN it equals one step on A∪B; BN normalises each batch with its own
statistics, so for BN it does not.
"""

from __future__ import annotations

import contextlib
import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from normlab.norms import Norm
from normlab.train import train
from normlab.train.config import validate
from normlab.train.engine import Distributed, accumulate_gradients, build_run_model
from normlab.train.families import get_family
from normlab.train.families.base import IGNORE
from normlab.train.schedules import learning_rate
from normlab.train.tasks import load_task

from .conftest import run_config

NO_DROPOUT = {"dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}
SMOOTHING = 0.1


def fp64_family(name: str):
    """The family with its loss kept in the model's dtype (the engine's casts the logits to float32)."""
    base = type(get_family(name))

    class Fp64(base):
        def loss(self, model, batch, label_smoothing):
            logits = self.forward(model, batch)
            return F.cross_entropy(logits.flatten(0, -2), self.targets(batch).flatten(), ignore_index=IGNORE,
                                   label_smoothing=label_smoothing)

    return Fp64()


def lm_setup(norm: str, **norm_options):
    """A tiny fp64 causal LM, its family (loss in fp64), and batches A, B (different token counts) and A∪B."""
    cfg = validate(run_config("lm", model={"norm": norm, "norm_options": norm_options, **NO_DROPOUT}))
    task = load_task(cfg["task"], cfg["data"], cfg["seed"])
    torch.manual_seed(0)
    model = build_run_model(cfg, task).double().train()
    family = fp64_family(task.family)
    a, b = np.arange(0, 5), np.arange(5, 16)
    batches = {name: family.collate(task, "train", idx) for name, idx in
               {"A": a, "B": b, "AB": np.concatenate([a, b])}.items()}
    assert batches["A"].n_targets != batches["B"].n_targets  # unequal weights: a mean of means would differ
    return model, family, batches


def grads_after(model, family, batches) -> tuple[list[torch.Tensor], float]:
    """The gradients (and update loss) that one update on ``batches`` leaves, from a fresh copy of ``model``."""
    model = copy.deepcopy(model)
    loss, _ = accumulate_gradients(model, model, family, batches, SMOOTHING, contextlib.nullcontext,
                                Distributed("cpu"), torch.device("cpu"))
    return [p.grad.clone() for p in model.parameters()], float(loss)


def max_rel_diff(xs, ys) -> float:
    return max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-300)) for x, y in zip(xs, ys, strict=True))


def test_two_accumulated_batches_equal_one_step_on_their_union_for_ln():
    model, family, b = lm_setup("ln")
    accumulated, loss2 = grads_after(model, family, [b["A"], b["B"]])
    union, loss1 = grads_after(model, family, [b["AB"]])
    for g, h in zip(accumulated, union, strict=True):
        torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-13)
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    # a plain mean of the two batch means is not the union's gradient (the test can tell them apart)
    mean_of_means = [(x + y) / 2 for x, y in zip(grads_after(model, family, [b["A"]])[0],
                                                  grads_after(model, family, [b["B"]])[0], strict=True)]
    assert max_rel_diff(mean_of_means, union) > 1e-3


@pytest.mark.parametrize("norm", ["bn", "rbn"])
def test_with_batch_statistics_two_batches_are_not_their_union(norm):
    """BN sees two smaller batches (each its own statistics, two running updates): not one large one.
    The authors' AdaNorm scripts used --update-freq 2 with LN, where it is the same."""
    options = {"penalty_mean": 1.0, "penalty_var": 0.1} if norm == "rbn" else {}
    model, family, b = lm_setup(norm, **options)
    accumulated, _ = grads_after(model, family, [b["A"], b["B"]])
    union, _ = grads_after(model, family, [b["AB"]])
    assert max_rel_diff(accumulated, union) > 1e-3


def test_the_rbn_penalty_is_normalised_by_the_targets_of_the_whole_update():
    """fairseq's gradient, computed independently: Σ_b (target-summed loss_b + Σ penalties_b) / Σ_b n_b."""
    model, family, b = lm_setup("rbn", penalty_mean=5.0, penalty_var=1.0)
    accumulated, loss = grads_after(model, family, [b["A"], b["B"]])
    ref = copy.deepcopy(model)
    total = 0.0
    for batch in (b["A"], b["B"]):
        logits = family.forward(ref, batch)
        total = total + F.cross_entropy(logits.flatten(0, -2), family.targets(batch).flatten(),
                                        ignore_index=IGNORE, label_smoothing=SMOOTHING, reduction="sum")
        penalties = [m.penalty() for m in ref.modules() if isinstance(m, Norm) and m.penalty() is not None]
        assert penalties and float(sum(penalties).detach()) > 0
        total = total + sum(penalties)
    (total / (b["A"].n_targets + b["B"].n_targets)).backward()
    for g, p in zip(accumulated, ref.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-13)
    assert loss == pytest.approx(float(total.detach()) / (b["A"].n_targets + b["B"].n_targets), rel=1e-12)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_steps_count_updates_and_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    cfg = run_config(
        "translation",
        model={"norm": "rbn", "norm_options": {"penalty_mean": 1.0, "penalty_var": 0.1}},
        train={"max_steps": 20, "update_freq": 2, "log_every": 5, "checkpoint_every": 10, "tid_every": 5},
    )
    once = run_config("translation", model=cfg["model"], train={**cfg["train"], "update_freq": 1})
    whole = train(cfg, tmp_path / "whole")
    single = train(once, tmp_path / "single")
    assert whole["steps"] == 20 and whole["update_freq"] == 2 and whole["bn_sync"] is False
    # twice the batches per update: about twice the tokens (the batches differ in size)
    assert 1.6 * single["tokens_seen"] < whole["tokens_seen"] < 2.4 * single["tokens_seen"]
    train_records = [r for r in read_jsonl(tmp_path / "whole" / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in train_records] == [5, 10, 15, 20]
    validated = validate(cfg)
    for r in train_records:  # the schedule counts updates
        assert r["lr"] == learning_rate(r["step"], validated["optim"], 20)
    # killed after update 15: the checkpoint at update 10 is where it resumes
    stopped = train(cfg, tmp_path / "split", stop_at_step=15)
    assert stopped == {"status": "interrupted", "steps": 15}
    resumed = train(cfg, tmp_path / "split", resume=True)
    assert resumed["test"] == whole["test"] and resumed["steps"] == 20
    def untimed(path):  # what a resumed run must reproduce: all but the timings
        return [{k: v for k, v in r.items() if k not in ("elapsed_s", "tokens_per_s")} for r in read_jsonl(path)]

    assert untimed(tmp_path / "split" / "metrics.jsonl") == untimed(tmp_path / "whole" / "metrics.jsonl")
    assert read_jsonl(tmp_path / "split" / "tid.jsonl") == read_jsonl(tmp_path / "whole" / "tid.jsonl")


def test_the_config_refuses_a_zero_update_freq():
    with pytest.raises(ValueError, match="train.update_freq"):
        validate(run_config("lm", train={"update_freq": 0}))
