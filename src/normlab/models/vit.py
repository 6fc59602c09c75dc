"""Vision Transformer: non-overlapping patches, a class token, learned positions, no padding."""

from __future__ import annotations

import torch
from torch import nn

from .options import ModelOptions


class VisionTransformer(nn.Module):
    def __init__(self, opts: ModelOptions, image_size: int, channels: int, n_classes: int):
        super().__init__()
        if image_size % opts.patch_size:
            raise ValueError(
                f"image size {image_size} is not a multiple of model.patch_size={opts.patch_size}"
            )
        n_patches = (image_size // opts.patch_size) ** 2
        self.patch_embed = nn.Conv2d(channels, opts.d_model, opts.patch_size, stride=opts.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, opts.d_model))
        self.positions = nn.Parameter(torch.randn(1, n_patches + 1, opts.d_model) * 0.02)
        self.drop = nn.Dropout(opts.dropout)
        self.encoder = opts.studied_stack()
        self.head = opts.head(opts.d_model, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes) for images (batch, channels, height, width)."""
        patches = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(len(images), -1, -1), patches], 1) + self.positions
        return self.head(self.encoder(self.drop(x))[:, 0])
