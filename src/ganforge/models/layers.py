"""Pieces shared by the model families: label conditioning and DCGAN initialisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def one_hot(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """(B,) integer labels -> (B, num_classes) one-hot in the dtype of ``like``.

    A float (B, num_classes) tensor passes through as given: a soft label, such as the mix of
    two one-hots that ``ganforge interpolate`` walks along."""
    if y.is_floating_point() and y.ndim == 2:
        return y.to(like.dtype)
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


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: lets D compare each sample with the rest of its minibatch, so a
    collapsed G (many near-identical samples) is easy to spot.

    M = f(x) T reshaped to (N, B, C); c_b(i, j) = exp(-||M_i,b - M_j,b||_1);
    o(x_i)_b = sum_{j != i} c_b(i, j); the layer returns [f(x), o(x)] with shape (N, A + B).
    """

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.1)

    def forward(self, h: Tensor) -> Tensor:
        m = (h @ self.T).view(-1, self.kernels, self.kernel_dim)  # (N, B, C)
        l1 = (m[:, None] - m[None]).abs().sum(-1)  # (N, N, B)
        o = torch.exp(-l1).sum(1) - 1.0  # drop the j == i term, exp(0) = 1
        return torch.cat([h, o], dim=1)


class Packed(nn.Module):
    """PacGAN (Lin et al. 2018): D judges packs of ``m`` samples instead of single ones.

    Consecutive samples of a batch are concatenated along the channel (or feature) dimension, so
    a (B, C, H, W) batch reaches the wrapped D, built for m * C channels, as (B/m, m C, H, W) and
    gives B/m logits. A collapsed G makes packs of look-alikes, which D can tell from packs of
    real, varied samples. Labels are not packed: packing needs an unconditional model."""

    def __init__(self, d: nn.Module, m: int):
        super().__init__()
        self.d, self.pack = d, m

    def packed(self, x: Tensor) -> Tensor:
        if len(x) % self.pack:
            raise ValueError(f"a batch of {len(x)} samples cannot be cut into packs of {self.pack}")
        return x.reshape(len(x) // self.pack, self.pack * x.shape[1], *x.shape[2:])

    def features(self, x: Tensor, y: Tensor | None = None) -> list[Tensor]:
        return self.d.features(self.packed(x), y)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.d(self.packed(x), y)  # (B / m,) logits
