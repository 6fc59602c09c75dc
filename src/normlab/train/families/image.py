"""Image classification: a Vision Transformer labels each image; scored by accuracy.

Stored split: the pair ``(images float32 (N, C, H, W) in [0, 1], labels int64 (N,))`` of tensors,
batched in fixed-size chunks (``train.batch_size``); no padding, no token lengths.

Augmentation (``data.options.augment: {crop_padding: P, flip: true}``, off by default): every
training batch, and only training batches, gets the CIFAR recipe of the ResNet/ViT papers -- each
image its own random crop of the image zero-padded by P pixels (size unchanged) and its own
horizontal flip with probability 1/2 -- as one vectorised gather (:func:`random_crop_flip`).  The
draws come from torch's global CPU generator, which the engine seeds from the run's seed (per rank)
and checkpoints, so a resumed run draws what the uninterrupted one drew.  Why not torchvision's
transforms: docs/data.md.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normlab.models import VisionTransformer

from ..examples import Batch, TaskData
from .base import Family, SyntheticOptions


def random_crop_flip(
    images: torch.Tensor, padding: int = 0, flip: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per image of ``images`` (N, C, H, W): a random H x W crop of the image zero-padded by ``padding``
    on every side, then, if ``flip``, a horizontal flip with probability 1/2 (torchvision's
    ``RandomCrop(H, padding)`` then ``RandomHorizontalFlip()``, drawn for each image, not once per batch).

    One gather from the padded batch: image n takes rows ``dy_n + [0, H)`` and columns ``dx_n + [0, W)``,
    reversed where it is flipped.  Draws (from ``generator``, default torch's global one): N row and N
    column offsets in [0, 2 * padding] if ``padding``, then N flips if ``flip``.  Returns ``images``
    itself when there is nothing to do.
    """
    n, c, h, w = images.shape
    if not padding and not flip:
        return images
    device = images.device
    rows, cols = torch.arange(h, device=device).expand(n, h), torch.arange(w, device=device).expand(n, w)
    if padding:
        images = F.pad(images, (padding, padding, padding, padding))  # zeros
        offsets = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator, device=device)
        rows, cols = rows + offsets[0], cols + offsets[1]
    if flip:
        flipped = torch.rand((n, 1), generator=generator, device=device) < 0.5
        cols = torch.where(flipped, cols.flip(1), cols)
    width = w + 2 * padding
    flat = (rows[:, :, None] * width + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return images.flatten(2).gather(2, flat).view(n, c, h, w)


class ImageClassification(Family):
    name = "image"
    model_class = VisionTransformer
    data_options = (*Family.data_options, "augment")

    def select(self, split, index: np.ndarray, max_len: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        images = np.asarray(split.images[index], dtype=np.float32) / 255.0
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)  # (N, C, H, W)
        return (torch.from_numpy(np.ascontiguousarray(images)),
                torch.from_numpy(np.asarray(split.labels[index], dtype=np.int64)))

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        images = splits["train"][0]
        return TaskData(self.name, splits, n_classes=len(train.label_names), label_names=list(train.label_names),
                        image_size=images.shape[-1], channels=images.shape[1], info=info)

    def synthetic(self, rng: np.random.Generator, sizes: dict[str, int], options: SyntheticOptions) -> TaskData:
        """Noisy class prototypes."""
        n_classes, size = options.n_classes, options.image_size
        prototypes = rng.normal(size=(n_classes, 1, size, size)).astype(np.float32)
        splits = {}
        for split, n in sizes.items():
            labels = rng.integers(0, n_classes, size=n)
            noise = rng.normal(scale=0.8, size=(n, 1, size, size)).astype(np.float32)
            splits[split] = (torch.from_numpy(prototypes[labels] + noise), torch.from_numpy(labels))
        return TaskData(self.name, splits, n_classes=n_classes, image_size=size, channels=1)

    def index_batches(
        self, examples, split: str, max_tokens: int, batch_size: int, seed: int, max_sentences: int | None
    ) -> list[np.ndarray]:
        """Consecutive chunks of ``batch_size`` images, in a seeded order for the training split."""
        n = len(examples[1])
        order = np.random.default_rng(seed).permutation(n) if split == "train" else np.arange(n)
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        images, labels = task.splits[split]
        idx = torch.from_numpy(np.asarray(indices))
        batch = images[idx]
        augment = task.info.get("options", {}).get("augment") if split == "train" else None
        if augment:
            batch = random_crop_flip(batch, augment.get("crop_padding", 0), augment.get("flip", False))
        return Batch({"images": batch, "labels": labels[idx]}, len(indices), len(indices), indices)

    def model_sizes(self, task: TaskData) -> dict:
        return dict(image_size=task.image_size, channels=task.channels, n_classes=task.n_classes)

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch.tensors["images"])

    def targets(self, batch: Batch) -> torch.Tensor:
        return batch.tensors["labels"]
