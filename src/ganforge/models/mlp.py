"""The MLP GAN of seed 000 (Keras-GAN style): G has fully connected hidden layers
(256-512-1024 by default) with LeakyReLU(0.2) and batch norm and a tanh output; D has two hidden
layers (512-256) with LeakyReLU(0.2) and one logit out. Conditional models concatenate the
one-hot label to G's and D's input."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ganforge.models import MODELS, ModelFamily
from ganforge.models.layers import dcgan_init, one_hot


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, hidden: list[int], out_shape: tuple[int, int, int],
                 num_classes: int = 0):
        super().__init__()
        self.out_shape, self.num_classes = out_shape, num_classes
        layers: list[nn.Module] = []
        width = z_dim + num_classes
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.BatchNorm1d(h)]
            width = h
        layers += [nn.Linear(width, math.prod(out_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], dim=1)
        return self.net(z).view(z.shape[0], *self.out_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], hidden: list[int], num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        width = math.prod(in_shape) + num_classes
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        layers += [nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = x.flatten(1)
        if self.num_classes:
            h = torch.cat([h, one_hot(y, self.num_classes, h)], dim=1)
        return self.net(h).squeeze(1)  # (B,) logits


def build(cfg) -> tuple[nn.Module, nn.Module]:
    shape = (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    k = cfg.model.num_classes if cfg.model.conditional else 0
    g = MLPGenerator(cfg.model.z_dim, list(cfg.model.g_hidden), shape, k)
    d = MLPDiscriminator(shape, list(cfg.model.d_hidden), k)
    dcgan_init(g)
    dcgan_init(d)
    return g, d


MODELS.register("mlp")(ModelFamily(build=build))
