"""Toy mixtures where mode collapse can be seen and counted (seed 002; PacGAN / VEEGAN protocol).

    mixture-1d  Gaussians on the line (default: peaks at -3 and +3, std 0.5, equal weights)
    ring        8 Gaussians on a circle of radius 2 at angles 2*pi*k/8, std 0.02
    grid        25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05

By default every step draws fresh samples; ``data.toy.fixed_size=N`` trains on a fixed set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ganforge.data.base import DATASETS, Batches, ImageData
from ganforge.errors import CheckpointError, ConfigError

TOY = {"mixture-1d": 1, "ring": 2, "grid": 2}  # name -> dimension
DEFAULT_STD = {"ring": 0.02, "grid": 0.05}


@dataclass
class ToyData:
    """A Gaussian mixture: centres (M, dim), per-mode std (M,) and weights (M,)."""
    name: str
    centers: Tensor
    stds: Tensor
    weights: Tensor
    fixed_size: int | None
    source: str
    num_classes: int = 1
    kind: str = "toy"

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, dim) float32 points on the CPU."""
        mode = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.centers[mode] + noise * self.stds[mode, None]

    def density(self, x: Tensor) -> Tensor:
        """p_data at (n, dim) points (isotropic Gaussians)."""
        d2 = ((x[:, None, :] - self.centers[None]) ** 2).sum(-1)  # (n, M)
        var = self.stds.pow(2)
        norm = (2 * math.pi * var) ** (self.dim / 2)
        return (self.weights * torch.exp(-d2 / (2 * var)) / norm).sum(1)

    def batches(self, batch_size: int, device: torch.device, seed: int):
        if self.fixed_size is not None:
            points = self.sample(self.fixed_size, torch.Generator().manual_seed(seed + 7))
            fixed = ImageData(points, torch.zeros(len(points), dtype=torch.int64), 1, self.source,
                              more="raise data.toy.fixed_size")
            return Batches(fixed, batch_size, device, seed)
        return FreshSamples(self, batch_size, device, seed)


class FreshSamples:
    """New points from the mixture every step, from a seeded generator (resumable)."""

    def __init__(self, data: ToyData, batch_size: int, device: torch.device, seed: int):
        self.data, self.batch_size, self.device = data, batch_size, device
        self.gen = torch.Generator().manual_seed(seed)
        self.labels = torch.zeros(batch_size, dtype=torch.int64, device=device)

    def next(self) -> tuple[Tensor, Tensor]:
        return self.data.sample(self.batch_size, self.gen).to(self.device), self.labels

    def state_dict(self) -> dict[str, Tensor]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "perm" in state:
            raise CheckpointError("the checkpoint's data order does not fit the data: it "
                                  "shuffles a fixed set, the data draws fresh toy samples; "
                                  "resume with the run's data.toy.fixed_size")
        self.gen.set_state(state["gen"])


def check_toy(cfg) -> None:
    t = cfg.data.toy
    if cfg.data.name == "mixture-1d":
        if not (len(t.means) == len(t.stds) == len(t.weights)) or not t.means:
            raise ConfigError("data.toy.means, data.toy.stds and data.toy.weights must be "
                              f"non-empty lists of one length (got {len(t.means)}, "
                              f"{len(t.stds)}, {len(t.weights)})")
        if not all(map(math.isfinite, t.means + t.stds + t.weights)):  # NaN passes a < test
            raise ConfigError(f"data.toy.means={t.means}, data.toy.stds={t.stds} and "
                              f"data.toy.weights={t.weights} must be finite numbers")
        if min(t.stds) <= 0 or min(t.weights) < 0 or sum(t.weights) <= 0:
            raise ConfigError("data.toy.stds must be > 0 and data.toy.weights >= 0 with a "
                              "positive sum")
    if t.std is not None and not 0 < t.std < math.inf:
        raise ConfigError(f"data.toy.std={t.std} must be finite and > 0")
    if t.modes < 1 or not 0 < t.radius < math.inf:
        raise ConfigError("data.toy.modes must be >= 1 and data.toy.radius finite and > 0")
    if t.fixed_size is not None and t.fixed_size < 1:
        raise ConfigError(f"data.toy.fixed_size={t.fixed_size} must be >= 1 (or null)")


def load_toy(cfg) -> ToyData:
    t, name = cfg.data.toy, cfg.data.name
    if name == "mixture-1d":
        centers = torch.tensor(t.means, dtype=torch.float32)[:, None]
        stds = torch.tensor(t.stds, dtype=torch.float32)
        weights = torch.tensor(t.weights, dtype=torch.float32)
        keep = weights > 0  # a Gaussian of weight 0 is no mode of the data: it is left out
        centers, stds, weights = centers[keep], stds[keep], weights[keep]
    else:
        if name == "ring":
            angles = 2 * math.pi * torch.arange(t.modes, dtype=torch.float64) / t.modes
            centers = (t.radius * torch.stack([angles.cos(), angles.sin()], 1)).float()
        else:  # grid
            values = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
            centers = torch.cartesian_prod(values, values)
        std = t.std if t.std is not None else DEFAULT_STD[name]
        stds = torch.full((len(centers),), float(std))
        weights = torch.ones(len(centers))
    weights = weights / weights.sum()
    how = f"a fixed set of {t.fixed_size:,} points" if t.fixed_size else "fresh samples every step"
    source = f"{name}: {len(centers)} Gaussians in {centers.shape[1]}-D, {how}"
    if cfg.data.limit is not None:  # said, not refused: a run made with it still resumes
        source += "; data.limit does not apply to a toy mixture (data.toy.fixed_size does)"
    return ToyData(name, centers, stds, weights, t.fixed_size, source)


for _name in TOY:
    DATASETS.register(_name)(load_toy)
