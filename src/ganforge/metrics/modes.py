"""Mode coverage on Gaussian mixtures, following the PacGAN protocol (Lin et al. 2018).

The data are M Gaussians with centres c_1..c_M and standard deviations s_1..s_M: the ring
(8 Gaussians at angles 2*pi*k/8; radius 1 with std 0.01 in PacGAN, radius 2 with std 0.02 in
VEEGAN) or the grid (25 Gaussians at {-4,-2,0,2,4}^2, std 0.05). From N generated samples
(2,500 in the papers):

- sample x is *high quality* (HQ) if ||x - c_j|| <= threshold * s_j for its nearest centre c_j
  (threshold = 3);
- mode j is *covered* if at least one HQ sample has c_j as its nearest centre;
- q_j = (HQ samples nearest to c_j) / (all HQ samples), and the reverse KL against the modes'
  weights w_j, uniform in the papers: KL(q || w) = sum_j q_j log(q_j / w_j), which is
  sum_j q_j log(q_j * M) for w_j = 1/M   (terms with q_j = 0 are 0).

KL is 0 when the HQ samples spread over the modes in the data's proportions (evenly, in the
papers) and log M when they all sit on one of M equal modes.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """(n_modes, 2) centres at angles 2*pi*k/n_modes, k = 0..n_modes-1.

    Not np.linspace(0, 2*pi, n_modes): that includes both 0 and 2*pi, so one mode appears twice
    and the ring really has n_modes - 1 modes.
    """
    angles = 2 * np.pi * np.arange(n_modes) / n_modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_centers(values: tuple[float, ...] = (-4, -2, 0, 2, 4)) -> np.ndarray:
    """(len(values)**2, 2) centres of the grid mixture: every pair (a, b) with a, b in values."""
    a, b = np.meshgrid(np.asarray(values, dtype=float), np.asarray(values, dtype=float),
                       indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def _as_points(x: Any, name: str) -> np.ndarray:
    """numpy or torch, (N,) or (N, d) -> float64 (N, d)."""
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N,) or (N, d), got {x.shape}")
    return x


def mode_metrics(samples: Any, centers: Any, stds: float | Any, threshold: float = 3.0,
                 weights: Any = None) -> dict[str, Any]:
    """Modes covered, % high-quality samples and reverse KL of the PacGAN protocol.

    samples: (N, d) or (N,), numpy or torch; centers: (M, d) or (M,); stds: one std for all
    modes or one per mode; weights: the modes' shares of the data, M numbers > 0 (scaled to
    sum to 1), or None for equal modes. Returns

        n       number of samples N
        modes   number of covered modes (at least one HQ sample nearest to them)
        hq      100 * (HQ samples) / N, where HQ means ||x - c_j|| <= threshold * s_j for the
                nearest centre c_j
        kl      sum_j q_j log(q_j / w_j) with q_j the share of HQ samples on mode j
                (w_j = 1/M for equal modes); None when there is no HQ sample (the
                distribution q is undefined)
        counts  HQ samples per mode, in the order of ``centers``
    """
    x = _as_points(samples, "samples")
    c = _as_points(centers, "centers")
    if not len(x) or not len(c):
        raise ValueError(f"mode_metrics needs at least one sample and one centre; got {len(x)} "
                         f"and {len(c)}")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"samples are {x.shape[1]}-D but centers are {c.shape[1]}-D")
    m = len(c)
    s = np.asarray(stds, dtype=np.float64)
    if s.ndim > 1 or s.size not in (1, m) or not (s > 0).all():
        raise ValueError(f"stds must be one std > 0 or one per mode ({m}), got {s.tolist()}")
    s = np.broadcast_to(s, (m,))
    w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (m,) or not (w > 0).all() or not np.isfinite(w).all():
        raise ValueError(f"weights must be one number > 0 per mode ({m}), got {w.tolist()}")
    w = w / w.sum()

    # (N, M) distances; N is thousands and M at most a few dozen, so this stays small.
    dist = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)
    nearest = dist.argmin(axis=1)
    hq = dist[np.arange(len(x)), nearest] <= threshold * s[nearest]
    counts = np.bincount(nearest[hq], minlength=m)

    kl = None
    if counts.sum() > 0:
        on = counts > 0
        q = counts[on] / counts.sum()
        kl = float(np.sum(q * np.log(q / w[on])))
    return {
        "n": len(x),
        "modes": int((counts > 0).sum()),
        "hq": 100.0 * float(hq.sum()) / len(x) if len(x) else 0.0,
        "kl": kl,
        "counts": counts.tolist(),
    }
