"""Image classification: a Vision Transformer labels each image; scored by accuracy.

Stored split: the pair ``(images float32 (N, C, H, W) in [0, 1], labels int64 (N,))`` of tensors,
batched in fixed-size chunks (``train.batch_size``); no padding, no token lengths.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from normlab.models import VisionTransformer

from ..examples import Batch, TaskData
from .base import Family, SyntheticOptions


class ImageClassification(Family):
    name = "image"
    model_class = VisionTransformer

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
        return Batch({"images": images[idx], "labels": labels[idx]}, len(indices), len(indices), indices)

    def model_sizes(self, task: TaskData) -> dict:
        return dict(image_size=task.image_size, channels=task.channels, n_classes=task.n_classes)

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch.tensors["images"])

    def targets(self, batch: Batch) -> torch.Tensor:
        return batch.tensors["labels"]
