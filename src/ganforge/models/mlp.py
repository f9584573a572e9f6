"""Fully connected models.

``mlp``: the MLP GAN of seed 000 (Keras-GAN style). G has fully connected hidden layers
(256-512-1024 by default) with LeakyReLU(0.2) and batch norm and a tanh output; D has two hidden
layers (512-256) with LeakyReLU(0.2) and one logit out.

``toy-mlp``: the same shape for low-dimensional toy data (``data.name`` mixture-1d, ring, grid):
ReLU hidden layers, no batch norm and a linear output, as in Metz et al.'s mixture experiments.

Conditional models concatenate the one-hot label to G's and D's input. With
``model.minibatch_kernels > 0`` D gets a minibatch-discrimination layer before its output.

With ``model.g_components`` K > 1 G's latent space is disconnected: z's first coordinate picks one
of K equally likely components and G sees that component's one-hot beside z, so G is a mixture of
K generators that share every weight but their first-layer bias (MGAN, Hoang et al. 2018, shares
all but the first layer). A continuous G fed a connected z must lay samples along a path between
the modes it covers; each component is connected on its own, but the components need not be.
Left alone G ignores the one-hot, so G also owns a small classifier Q that guesses the component
from the sample; G and Q minimise its cross-entropy together (``loss.info_weight``), InfoGAN's
bound on the mutual information between component and sample, which pulls the components apart.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.models import MODELS, ModelFamily
from ganforge.models.layers import MinibatchDiscrimination, dcgan_init, one_hot


Q_WIDTH = 128  # hidden units of the component classifier Q


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, hidden: list[int], out_shape: tuple[int, ...],
                 num_classes: int = 0, toy: bool = False, components: int = 1,
                 z_dist: str = "normal"):
        super().__init__()
        self.z_dim, self.out_shape, self.num_classes = z_dim, out_shape, num_classes
        self.components, self.z_dist = components, z_dist
        layers: list[nn.Module] = []
        width = z_dim + num_classes + (components if components > 1 else 0)
        for h in hidden:
            layers += ([nn.Linear(width, h), nn.ReLU()] if toy else
                       [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.BatchNorm1d(h)])
            width = h
        layers += [nn.Linear(width, math.prod(out_shape))]
        if not toy:
            layers += [nn.Tanh()]
        self.net = nn.Sequential(*layers)
        if components > 1:  # Q: sample -> component logits
            self.q = nn.Sequential(nn.Linear(math.prod(out_shape), Q_WIDTH), nn.ReLU(),
                                   nn.Linear(Q_WIDTH, components))

    def component(self, z: Tensor) -> Tensor:
        """(B,) component index in [0, K): z's first coordinate through its own CDF, so every
        component is equally likely and a given z always picks the same one."""
        u = (z[:, 0] + 1) / 2 if self.z_dist == "uniform" else torch.special.ndtr(z[:, 0])
        return (u * self.components).long().clamp_(0, self.components - 1)

    def info_loss(self, z: Tensor, x: Tensor) -> Tensor:
        """Cross-entropy of Q's guess at the component of G(z) = x."""
        return F.cross_entropy(self.q(x.flatten(1)), self.component(z))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        n = z.shape[0]
        parts = [z]
        if self.num_classes:
            parts.append(one_hot(y, self.num_classes, z))
        if self.components > 1:
            parts.append(one_hot(self.component(z), self.components, z))
        h = torch.cat(parts, dim=1) if len(parts) > 1 else z
        return self.net(h).view(n, *self.out_shape)  # (B, C, H, W) or (B, dim)


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
    k = m.num_labels
    g = MLPGenerator(m.z_dim, list(m.g_hidden), shape, k, toy=toy, components=m.g_components,
                     z_dist=m.z_dist)
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
