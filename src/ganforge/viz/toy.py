"""Pictures of toy runs (seed 002): the 1-D two-peak mixture and 2-D mixtures, one PNG a frame.

Every frame has fixed axis limits and a fixed pixel size (FIGSIZE_* x DPI) so that frames from
different steps line up when combined into a GIF (see plots.make_gif).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ganforge.viz.plots import figure, save_figure

DPI = 100
FIGSIZE_1D = (8.0, 4.8)   # inches -> 800 x 480 px
FIGSIZE_2D = (6.5, 6.0)   # inches -> 650 x 600 px (room for the colour bar and legend)
REAL_COLOUR = "tab:blue"
FAKE_COLOUR = "tab:orange"


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def kde_1d(samples: Any, xs: Any, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density estimate at xs:

        p(x) = 1/(n h) sum_i phi((x - x_i) / h),   phi = standard normal density,

    with Scott's rule h = std(samples, ddof=1) * n^(-1/5) by default (as scipy's gaussian_kde).
    A collapsed generator can give (nearly) identical samples and h = 0, so h is floored at the
    spacing of xs: the density then shows as a narrow spike instead of NaNs.
    """
    s = _numpy(samples).ravel()
    x = _numpy(xs).ravel()
    if bandwidth is None:
        bandwidth = float(s.std(ddof=1)) * len(s) ** (-1 / 5) if len(s) > 1 else 0.0
        if len(x) > 1:
            bandwidth = max(bandwidth, float(np.abs(np.diff(x)).min()))
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    u = (x[:, None] - s[None, :]) / bandwidth
    return np.exp(-0.5 * u * u).sum(axis=1) / (len(s) * bandwidth * np.sqrt(2 * np.pi))


def frame_1d(path: Path, xs: Any, p_data: Any, fake_samples: Any, d_of_x: Any, step: int,
             ylim: tuple[float, float] | None = None, d_label: str = "D(x)",
             d_star: bool = True) -> None:
    """One frame of a 1-D run: p_data(x), a density histogram of G's samples, D(x) (named
    d_label) and, with d_star, the optimal D*(x) = p_data(x) / (p_data(x) + p_g(x)) for the
    current G, with p_g = kde_1d(samples): the optimum of the cross-entropy and least-squares
    D losses, which a Wasserstein or hinge critic does not have.

    Densities and D share one axis; the y range is fixed (default 0 .. max(1.05, 1.2 max p_data))
    so a collapsed G's tall histogram is cut off rather than rescaling the frame.
    """
    xs, p_data, d_of_x = _numpy(xs), _numpy(p_data), _numpy(d_of_x)
    fake = _numpy(fake_samples).ravel()
    p_g = kde_1d(fake, xs)
    total = p_data + p_g
    # D* is 0/0 where neither density has mass; leave those points out instead of plotting noise.
    optimum = np.where(total > 1e-3 * total.max(), p_data / np.maximum(total, 1e-300), np.nan)
    ylim = ylim or (0.0, max(1.05, 1.2 * float(p_data.max())))

    fig, ax = figure(figsize=FIGSIZE_1D)
    ax.fill_between(xs, p_data, color=REAL_COLOUR, alpha=0.25, label="p_data(x)")
    ax.plot(xs, p_data, color=REAL_COLOUR, linewidth=1.5)
    ax.hist(fake, bins=np.linspace(xs[0], xs[-1], 121), density=True, color=FAKE_COLOUR,
            alpha=0.5, label="G's samples (histogram)")
    ax.plot(xs, d_of_x, color="black", linewidth=2, label=d_label)
    if d_star:
        ax.plot(xs, optimum, color="tab:green", linestyle="--", linewidth=1.5,
                label="D*(x) = p_data / (p_data + p_g)")
    ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("density  /  D(x)")
    ax.set_title(f"step {step}")
    ax.grid(alpha=0.3)
    # Below the axes: inside, the legend would hide D and D* where they reach 1.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, fontsize=8,
              frameon=False)
    fig.tight_layout()
    save_figure(fig, path, dpi=DPI)


def frame_2d(path: Path, real: Any, fake: Any, grid_x: Any, grid_y: Any, d_grid: Any,
             step: int, d_label: str = "D(x)",
             d_range: tuple[float, float] | None = (0.0, 1.0)) -> None:
    """One frame of a 2-D run: D(x) over the plane as a heat map (named d_label; by default
    0 = fake, 1 = real; d_range None spans the values d_grid takes), with real and generated
    points on top.

    grid_x (nx,) and grid_y (ny,) are the axes of the evaluation grid and d_grid (ny, nx) holds
    D at (grid_x[j], grid_y[i]); the plot's limits are the grid's, so every frame shows the same
    window.
    """
    gx, gy, d = _numpy(grid_x), _numpy(grid_y), _numpy(d_grid)
    if gx.ndim == 2:  # a meshgrid was passed: take its axes
        gx, gy = gx[0], gy[:, 0]
    real, fake = _numpy(real).reshape(-1, 2), _numpy(fake).reshape(-1, 2)

    fig, ax = figure(figsize=FIGSIZE_2D)
    lo, hi = d_range or (float(np.nanmin(d)), float(np.nanmax(d)))
    mesh = ax.pcolormesh(gx, gy, d, cmap="gray", vmin=lo, vmax=hi, shading="auto")
    fig.colorbar(mesh, ax=ax, label=d_label, fraction=0.046, pad=0.04)  # as tall as the axes
    ax.scatter(real[:, 0], real[:, 1], s=6, color=REAL_COLOUR, label="real", alpha=0.8,
               linewidths=0)
    ax.scatter(fake[:, 0], fake[:, 1], s=6, color=FAKE_COLOUR, label="generated", alpha=0.8,
               linewidths=0)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(f"step {step}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, markerscale=3,
              fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, path, dpi=DPI)
