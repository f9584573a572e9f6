"""DCGAN (Radford et al. 2015, seed 003) for 28, 32 and 64 px images.

Every architecture rule of the paper holds: strided convolutions in D and transposed
convolutions in G (no pooling); no fully connected hidden layers (z enters as a 1x1 map that a
transposed convolution projects to s0 x s0, and D's last convolution reduces s0 x s0 to one
logit); batch norm everywhere except G's output and D's input; ReLU in G with tanh at the
output; LeakyReLU(0.2) in D; weights from N(0, 0.02).

Sizes (s0 = 7 for 28 px, else 4; each step doubles the side):
    64 px, g_width=128:  z -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64xC
    28 px, g_width=64:   z -> 7x7x128 -> 14x14x64 -> 28x28xC
Conditional models concatenate the one-hot label to z and to the input feature maps of every
layer of G and D (carpedm20's DCGAN-tensorflow).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ganforge.errors import ConfigError
from ganforge.models import MODELS, ModelFamily
from ganforge.models.layers import concat_label_maps, dcgan_init, one_hot

SIZES = (28, 32, 64)


def _plan(image_size: int) -> tuple[int, int]:
    """(s0, number of 2x up/down-sampling layers) for an image size."""
    s0 = 7 if image_size == 28 else 4
    return s0, int(math.log2(image_size // s0))


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, width: int = 64,
                 num_classes: int = 0):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        k = num_classes
        s0, n_up = _plan(image_size)
        widths = [width * 2 ** (n_up - 1 - i) for i in range(n_up)]  # e.g. 1024, 512, 256, 128
        blocks = [nn.Sequential(nn.ConvTranspose2d(z_dim + k, widths[0], s0, 1, 0, bias=False),
                                nn.BatchNorm2d(widths[0]), nn.ReLU(True))]
        for c_in, c_out in zip(widths, widths[1:]):
            blocks.append(nn.Sequential(nn.ConvTranspose2d(c_in + k, c_out, 4, 2, 1, bias=False),
                                        nn.BatchNorm2d(c_out), nn.ReLU(True)))
        blocks.append(nn.Sequential(nn.ConvTranspose2d(widths[-1] + k, channels, 4, 2, 1),
                                    nn.Tanh()))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = z[:, :, None, None]  # (B, Z, 1, 1)
        y1 = one_hot(y, self.num_classes, z) if self.num_classes else None
        for block in self.blocks:
            if y1 is not None:
                h = concat_label_maps(h, y1)
            h = block(h)
        return h  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int = 64, num_classes: int = 0):
        super().__init__()
        self.num_classes = k = num_classes
        s0, n_down = _plan(image_size)
        widths = [width * 2 ** i for i in range(n_down)]  # e.g. 64, 128, 256, 512
        blocks = [nn.Sequential(nn.Conv2d(channels + k, widths[0], 4, 2, 1),
                                nn.LeakyReLU(0.2, True))]  # no batch norm on D's input layer
        for c_in, c_out in zip(widths, widths[1:]):
            blocks.append(nn.Sequential(nn.Conv2d(c_in + k, c_out, 4, 2, 1, bias=False),
                                        nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Conv2d(widths[-1] + k, 1, s0, 1, 0))  # s0 x s0 -> one logit
        self.blocks = nn.ModuleList(blocks)

    def features(self, x: Tensor, y: Tensor | None = None) -> list[Tensor]:
        """Output of every convolutional block but the last (for probes and filters)."""
        y1 = one_hot(y, self.num_classes, x) if self.num_classes else None
        h, feats = x, []
        for block in self.blocks:
            if y1 is not None:
                h = concat_label_maps(h, y1)
            h = block(h)
            feats.append(h)
        return feats

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.features(x, y)[-1].flatten(1).squeeze(1)  # (B,) logits


def check(cfg) -> None:
    from ganforge.models.mlp import check_images

    check_images(cfg)
    if cfg.model.minibatch_kernels:
        raise ConfigError("model.minibatch_kernels is supported by model.arch=mlp and toy-mlp; "
                          "set it to 0 for dcgan")
    if cfg.model.g_components > 1:
        raise ConfigError("model.g_components is supported by model.arch=mlp and toy-mlp; "
                          "set it to 1 for dcgan")
    if cfg.data.image_size not in SIZES:
        raise ConfigError(f"data.image_size={cfg.data.image_size} is not supported by "
                          f"model.arch=dcgan; choose one of: {', '.join(map(str, SIZES))}")


def build(cfg) -> tuple[nn.Module, nn.Module]:
    k = cfg.model.num_labels
    g = DCGANGenerator(cfg.model.z_dim, cfg.data.channels, cfg.data.image_size,
                       cfg.model.g_width, k)
    d = DCGANDiscriminator(cfg.data.channels * cfg.model.pack, cfg.data.image_size,
                           cfg.model.d_width, k)
    dcgan_init(g)
    dcgan_init(d)
    return g, d


MODELS.register("dcgan")(ModelFamily(build=build, check=check))

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]
