"""The image family's augmentation (`data.options.augment`): per-image random crop of the zero-padded
image and horizontal flip, on training batches only, seeded, resumed exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from normlab.train import ConfigError, train, validate
from normlab.train.examples import TaskData
from normlab.train.families import ImageClassification
from normlab.train.families.image import random_crop_flip

from .conftest import run_config

ROOT = Path(__file__).resolve().parents[2]


def reference(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """One image at a time, as torchvision's RandomCrop(size, padding) + RandomHorizontalFlip() do it,
    with the draws random_crop_flip documents (N row offsets, N column offsets, then N flips)."""
    n, _, h, w = images.shape
    if padding:
        dy, dx = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator)
    else:
        dy = dx = torch.zeros((n, 1), dtype=torch.long)
    flips = torch.rand((n, 1), generator=generator) < 0.5 if flip else torch.zeros((n, 1), dtype=torch.bool)
    out = []
    for i in range(n):
        padded = F.pad(images[i], (padding,) * 4)  # zeros
        top, left = int(dy[i, 0]), int(dx[i, 0])
        crop = padded[:, top : top + h, left : left + w]
        out.append(crop.flip(-1) if flips[i, 0] else crop)
    return torch.stack(out)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("padding, flip", [(4, True), (4, False), (0, True), (1, True), (3, False)])
@pytest.mark.parametrize("shape", [(64, 3, 32, 32), (9, 1, 8, 8), (5, 2, 7, 11)])
def test_equals_a_per_image_reference(padding, flip, shape):
    images = torch.rand(shape, generator=gen(0))
    assert torch.equal(random_crop_flip(images, padding, flip, gen(1)), reference(images, padding, flip, gen(1)))


def test_each_image_of_a_batch_gets_its_own_crop_and_flip():
    one = torch.rand((1, 3, 16, 16), generator=gen(0))
    out = random_crop_flip(one.expand(64, -1, -1, -1).contiguous(), 4, True, gen(2))
    distinct = {tuple(x.flatten().tolist()) for x in out}
    assert len(distinct) > 32  # one crop for the whole batch (torchvision v2 on a batch) would give 1
    # and the first two images differ
    assert not torch.equal(out[0], out[1])


def test_zero_padding_keeps_the_size_and_shifts_the_image_in():
    ones = torch.ones((512, 1, 8, 8))
    out = random_crop_flip(ones, 2, False, gen(3))
    assert out.shape == ones.shape and set(out.unique().tolist()) <= {0.0, 1.0}
    shifts = set()
    for x in out[:, 0].bool():
        rows, cols = x.any(1), x.any(0)
        assert int(x.sum()) == int(rows.sum()) * int(cols.sum())  # a solid rectangle of ones, zeros around it
        # zero bands: (top, bottom) rows and (left, right) columns; a crop shifted by d has |d| on one side
        band = lambda inside: (int(inside.int().argmax()), int(inside.flip(0).int().argmax()))  # noqa: E731
        (top, bottom), (left, right) = band(rows), band(cols)
        assert min(top, bottom) == 0 == min(left, right) and max(top, bottom, left, right) <= 2
        shifts.add((bottom - top, right - left))
    assert shifts == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}  # every offset of the padding


def test_flip_only_gives_the_image_or_its_mirror_and_both_occur():
    images = torch.rand((64, 3, 8, 8), generator=gen(4))
    out = random_crop_flip(images, 0, True, gen(5))
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and bool(same.any()) and bool(mirrored.any())
    assert torch.equal(out[mirrored][:, :, :, 0], images[mirrored][:, :, :, -1])  # left edge <- right edge


def test_no_padding_and_no_flip_is_the_identity_and_draws_nothing():
    images = torch.rand((4, 3, 8, 8))
    state = torch.get_rng_state()
    assert random_crop_flip(images, 0, False) is images
    assert torch.equal(torch.get_rng_state(), state)


def test_the_same_seed_gives_the_same_crops_and_another_seed_others():
    images = torch.rand((32, 3, 16, 16), generator=gen(6))
    assert torch.equal(random_crop_flip(images, 4, True, gen(7)), random_crop_flip(images, 4, True, gen(7)))
    assert not torch.equal(random_crop_flip(images, 4, True, gen(7)), random_crop_flip(images, 4, True, gen(8)))
    torch.manual_seed(9)  # the default: torch's global generator, which the engine seeds and checkpoints
    a = random_crop_flip(images, 4, True)
    torch.manual_seed(9)
    assert torch.equal(a, random_crop_flip(images, 4, True))


def test_the_family_augments_training_batches_only():
    images, labels = torch.rand((16, 1, 8, 8), generator=gen(10)), torch.arange(16)
    plain = TaskData("image", {s: (images, labels) for s in ("train", "valid", "test")}, n_classes=16,
                     image_size=8, channels=1)
    augmented = TaskData("image", plain.splits, n_classes=16, image_size=8, channels=1,
                         info={"options": {"augment": {"crop_padding": 2, "flip": True}}})
    family, index = ImageClassification(), torch.arange(16).numpy()
    for split in ("valid", "test"):
        assert torch.equal(family.collate(augmented, split, index).tensors["images"], images)
    assert torch.equal(family.collate(plain, "train", index).tensors["images"], images)
    batch = family.collate(augmented, "train", index)
    assert not torch.equal(batch.tensors["images"], images) and torch.equal(batch.tensors["labels"], labels)


# --- in runs ------------------------------------------------------------------------------------------


def image_config(cache, augment, **train_keys):
    options = {"cache": str(cache)} | ({"augment": augment} if augment is not None else {})
    return run_config("image", data={"source": "normlab", "name": "tiny_image", "options": options},
                      model={"patch_size": 4}, train={"batch_size": 8, "max_steps": 30, "log_every": 5,
                                                      **train_keys})


def train_losses(out):
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_an_augmented_run_is_seeded_and_resumes_exactly(tiny_datasets, tmp_path):
    augment = {"crop_padding": 2, "flip": True}
    cfg = image_config(tiny_datasets, augment, checkpoint_every=10, average_last=2)
    whole = train(cfg, tmp_path / "whole")
    again = train(cfg, tmp_path / "again")
    assert train_losses(tmp_path / "again") == train_losses(tmp_path / "whole") and again["test"] == whole["test"]
    plain = train(image_config(tiny_datasets, None, checkpoint_every=10, average_last=2), tmp_path / "plain")
    assert train_losses(tmp_path / "plain") != train_losses(tmp_path / "whole")  # the training batches differ
    assert plain["test"] != whole["test"]
    # killed at step 25, resumed from the checkpoint of step 20: the same losses, checkpoints and metrics
    train(cfg, tmp_path / "split", stop_at_step=25)
    resumed = train(cfg, tmp_path / "split", resume=True)
    assert train_losses(tmp_path / "split") == train_losses(tmp_path / "whole")
    assert resumed["test"] == whole["test"] and resumed["valid"] == whole["valid"]
    assert resumed["averaged_checkpoints"] == whole["averaged_checkpoints"] == ["step_00000020.pt", "step_00000030.pt"]


def test_a_finished_augmented_run_reads_back_the_same_augmented_batches_every_time(tiny_datasets, tmp_path):
    """load_run's first epoch (what `normlab probe` measures TID on): augmented as in training, the same
    on every call whatever the caller's generator, which it leaves alone."""
    from normlab.train import load_run

    train(image_config(tiny_datasets, {"crop_padding": 2, "flip": True}, max_steps=5), tmp_path / "run")
    run = load_run(tmp_path / "run")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = [b.tensors["images"] for b in run.first_epoch()]
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)
    assert all(torch.equal(a, b.tensors["images"]) for a, b in zip(first, run.first_epoch(), strict=True))
    images = run.task.splits["train"][0]
    plain = [images[torch.from_numpy(np.asarray(b.indices))] for b in run.first_epoch()]
    assert not any(torch.equal(a, b) for a, b in zip(first, plain, strict=True))


def test_augment_is_an_image_option_with_checked_values(tiny_datasets):
    validate(image_config(tiny_datasets, {"crop_padding": 4, "flip": True}))
    validate(image_config(tiny_datasets, None))
    for bad, says in (({"crop_padding": -1}, "data.options.augment.crop_padding"),
                      ({"flip": "yes"}, "data.options.augment.flip"),
                      ({"pad": 4}, "data.options.augment.pad")):
        with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
            validate(image_config(tiny_datasets, bad))
    text = run_config("lm", data={"source": "normlab", "name": "tiny_lm",
                                  "options": {"cache": str(tiny_datasets), "augment": {"flip": True}}})
    with pytest.raises(ConfigError, match="unknown key.*augment.*task 'lm'"):
        validate(text)


def test_the_paper_cifar10_recipe_augments_and_the_default_fashion_mnist_does_not():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["datasets"]
    default = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())["datasets"]
    assert paper["cifar10"]["data_options"]["augment"] == {"crop_padding": 4, "flip": True}
    assert "augment" not in default["fashion_mnist"].get("data_options", {})
