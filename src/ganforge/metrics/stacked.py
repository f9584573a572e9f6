"""Mode coverage on Stacked MNIST (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).

Each of the three channels of a sample is labelled 0..9 by the shipped MNIST classifier
(classifier.py, on the channel as a 1-channel image); the sample's mode is
100 * d_R + 10 * d_G + d_B, one of 1,000. From N samples (26,000 in the papers):

- modes covered: how many of the 1,000 modes at least one sample falls in;
- KL: with p_j = (samples in mode j) / N and q uniform, KL(p || q) = sum_j p_j log(1000 p_j)
  (terms with p_j = 0 are 0). 0 when the samples spread evenly over all modes, log 1000 = 6.91
  when they all sit on one;
- digit KL: the sum of the three channels' KL(digit shares || uniform), the part of KL due to
  unequal digit frequencies (see stacked_metrics).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

N_MODES = 1000
DEFAULT_SAMPLES = 26000  # PacGAN / VEEGAN protocol
PLACE = torch.tensor([100, 10, 1])


def channel_digits(images) -> Tensor:
    """(N, 3) int64: the classifier's digit for each channel of (N, 3, H, W) images (floats in
    [-1, 1] or uint8; other sizes are resized to 28x28)."""
    from ganforge.metrics.image import extract

    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"stacked MNIST images must have shape (N, 3, H, W), got {tuple(x.shape)}")
    return torch.stack([extract(x[:, c: c + 1])[1].argmax(1) for c in range(3)], 1)


def mode_ids(images) -> Tensor:
    """(N,) int64 mode of each stacked image: 100 * d_R + 10 * d_G + d_B."""
    return (channel_digits(images) * PLACE).sum(1)


def histogram_metrics(modes, n_modes: int = N_MODES) -> dict:
    """Modes covered and KL(p || uniform) of integer mode ids in 0..n_modes-1.

    Returns {"n", "modes", "kl", "counts"} with counts the samples per mode (a list)."""
    m = np.asarray(torch.as_tensor(modes).cpu())
    if m.ndim != 1 or len(m) == 0 or not np.issubdtype(m.dtype, np.integer) \
            or m.min() < 0 or m.max() >= n_modes:  # not cast: that truncated floats silently
        raise ValueError(f"mode ids must be a non-empty list of integers in 0..{n_modes - 1}")
    m = m.astype(np.int64)
    counts = np.bincount(m, minlength=n_modes)
    p = counts[counts > 0] / len(m)
    return {"n": len(m), "modes": int((counts > 0).sum()),
            "kl": float(np.sum(p * np.log(p * n_modes))), "counts": counts.tolist()}


def stacked_metrics(images) -> dict:
    """Modes covered (of 1,000) and KL of the mode histogram against uniform for (N, 3, H, W)
    stacked MNIST samples. Returns {"n", "modes", "kl", "counts"} (see histogram_metrics) and
    "digit_kl": the sum over the three channels of KL(channel's digit shares || uniform over
    10). Always KL = digit_kl + the total correlation of the three digits (>= 0; 0 when the
    channels are independent), so digit_kl is the part of KL that comes from G drawing some
    digits more often than others rather than from missing or favoured combinations."""
    digits = channel_digits(images)
    result = histogram_metrics((digits * PLACE).sum(1))
    result["digit_kl"] = sum(histogram_metrics(digits[:, c], 10)["kl"] for c in range(3))
    return result

