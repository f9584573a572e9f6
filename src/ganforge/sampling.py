"""Noise and sampling from a trained generator."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def sample_z(n: int, z_dim: int, dist: str, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> Tensor:
    """(n, z_dim) noise: ``normal`` is N(0, 1), ``uniform`` is U(-1, 1) (carpedm20, seed 003)."""
    if dist == "uniform":
        return torch.rand(n, z_dim, generator=generator, device=device).mul_(2).sub_(1)
    return torch.randn(n, z_dim, generator=generator, device=device)


def fixed_inputs(cfg, n: int = 100, seed: int | None = None,
                 label: int | None = None) -> tuple[Tensor, Tensor | None]:
    """The same noise (and labels) every time for a seed: the 10x10 progress grid uses these.

    For conditional models row r of a 10-wide grid shows class r unless ``label`` fixes one."""
    if n < 1:
        raise ValueError(f"n={n}: ask for at least 1 sample")
    gen = torch.Generator().manual_seed(cfg.train.seed + 12345 if seed is None else seed)
    z = sample_z(n, cfg.model.z_dim, cfg.model.z_dist, gen)
    if not cfg.model.conditional:
        return z, None
    if label is not None:
        return z, torch.full((n,), label, dtype=torch.int64)
    rows = torch.arange(n) // 10
    return z, rows % cfg.model.num_classes


@torch.no_grad()
def generate(g: nn.Module, z: Tensor, y: Tensor | None = None, batch: int = 500) -> Tensor:
    """G(z) in eval mode (batch-norm running statistics), in chunks, returned on the CPU.
    A conditional G needs labels ``y`` (N,) in 0..num_classes-1, e.g. from ``fixed_inputs``."""
    k = getattr(g, "num_classes", 0)
    if k and y is None:
        raise ValueError(f"this G is conditional: pass labels y, (N,) ints in 0..{k - 1}")
    if not k and y is not None:
        raise ValueError("this G is unconditional and takes no labels: pass y=None")
    was_training = g.training
    g.eval()
    device = next(g.parameters()).device
    out = []
    for i in range(0, len(z), batch):
        yi = None if y is None else y[i: i + batch].to(device)
        out.append(g(z[i: i + batch].to(device), yi).float().cpu())
    g.train(was_training)
    return torch.cat(out)
