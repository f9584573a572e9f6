"""Fully connected models.

``mlp``: the MLP GAN of seed 000 (Keras-GAN style). G has fully connected hidden layers
(256-512-1024 by default) with LeakyReLU(0.2) and batch norm and a tanh output; D has two hidden
layers (512-256) with LeakyReLU(0.2) and one logit out.

``toy-mlp``: the same shape for low-dimensional toy data (``data.name`` mixture-1d, ring, grid):
ReLU hidden layers, no batch norm and a linear output, as in Metz et al.'s mixture experiments.

Conditional models concatenate the one-hot label to G's and D's input. With
``model.minibatch_kernels > 0`` D gets a minibatch-discrimination layer before its output.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.models import MODELS, ModelFamily
from ganforge.models.layers import MinibatchDiscrimination, dcgan_init, one_hot


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, hidden: list[int], out_shape: tuple[int, ...],
                 num_classes: int = 0, toy: bool = False):
        super().__init__()
        self.out_shape, self.num_classes = out_shape, num_classes
        layers: list[nn.Module] = []
        width = z_dim + num_classes
        for h in hidden:
            layers += ([nn.Linear(width, h), nn.ReLU()] if toy else
                       [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.BatchNorm1d(h)])
            width = h
        layers += [nn.Linear(width, math.prod(out_shape))]
        if not toy:
            layers += [nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], dim=1)
        return self.net(z).view(z.shape[0], *self.out_shape)  # (B, C, H, W) or (B, dim)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], num_classes: int = 0,
                 toy: bool = False, minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5):
        super().__init__()
        self.num_classes = num_classes
        width = math.prod(in_shape) + num_classes
        blocks: list[nn.Module] = []
        for h in hidden:
            blocks.append(nn.Sequential(nn.Linear(width, h), nn.ReLU() if toy else nn.LeakyReLU(0.2)))
            width = h
        if minibatch_kernels:
            blocks.append(MinibatchDiscrimination(width, minibatch_kernels, minibatch_kernel_dim))
            width += minibatch_kernels
        blocks.append(nn.Linear(width, 1))
        self.blocks = nn.ModuleList(blocks)

    def features(self, x: Tensor, y: Tensor | None = None) -> list[Tensor]:
        """Every block's output; the last is the (B, 1) logit."""
        h = x.flatten(1)
        if self.num_classes:
            h = torch.cat([h, one_hot(y, self.num_classes, h)], dim=1)
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        return feats

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.features(x, y)[-1].squeeze(1)  # (B,) logits


def _build(cfg, shape: tuple[int, ...], toy: bool) -> tuple[nn.Module, nn.Module]:
    m = cfg.model
    k = m.num_classes if m.conditional else 0
    g = MLPGenerator(m.z_dim, list(m.g_hidden), shape, k, toy=toy)
    d = MLPDiscriminator((shape[0] * m.pack, *shape[1:]), list(m.d_hidden), k, toy=toy,
                         minibatch_kernels=m.minibatch_kernels,
                         minibatch_kernel_dim=m.minibatch_kernel_dim)
    if not toy:  # toy models keep PyTorch's default init (as in Metz et al.'s code)
        dcgan_init(g)
        dcgan_init(d)
    return g, d


def build(cfg) -> tuple[nn.Module, nn.Module]:
    return _build(cfg, (cfg.data.channels, cfg.data.image_size, cfg.data.image_size), toy=False)


def build_toy(cfg) -> tuple[nn.Module, nn.Module]:
    from ganforge.data.toy import TOY
    return _build(cfg, (TOY[cfg.data.name],), toy=True)


def check_images(cfg) -> None:
    from ganforge.data import is_toy
    if is_toy(cfg.data.name):
        raise ConfigError(f"model.arch={cfg.model.arch} is for images but data.name="
                          f"{cfg.data.name} is a toy mixture; use model.arch=toy-mlp")


def check_toy(cfg) -> None:
    from ganforge.data import is_toy
    if not is_toy(cfg.data.name):
        raise ConfigError(f"model.arch=toy-mlp needs toy data (mixture-1d, ring, grid), not "
                          f"data.name={cfg.data.name}; use mlp or dcgan for images")


MODELS.register("mlp")(ModelFamily(build=build, check=check_images))
MODELS.register("toy-mlp")(ModelFamily(build=build_toy, check=check_toy))
