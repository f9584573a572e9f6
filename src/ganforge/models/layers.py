"""Pieces shared by the model families: label conditioning and DCGAN initialisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def one_hot(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """(B,) integer labels -> (B, num_classes) one-hot in the dtype of ``like``."""
    return F.one_hot(y, num_classes).to(like.dtype)


def concat_label_maps(h: Tensor, y_onehot: Tensor) -> Tensor:
    """Concatenate a (B, K) one-hot to every position of (B, C, H, W) features -> (B, C+K, H, W)
    (carpedm20's ``conv_cond_concat``, seed 003)."""
    b, _, height, width = h.shape
    return torch.cat([h, y_onehot[:, :, None, None].expand(b, -1, height, width)], dim=1)


def dcgan_init(module: nn.Module) -> None:
    """Seed 003: all weights from N(0, 0.02); batch-norm scales from N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
