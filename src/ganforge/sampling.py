"""Noise and sampling from a trained generator."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ganforge.errors import whole
from ganforge.plugins import call


def sample_z(n: int, z_dim: int, dist: str, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> Tensor:
    """(n, z_dim) noise: ``normal`` is N(0, 1), ``uniform`` is U(-1, 1) (carpedm20, seed 003)."""
    if dist not in ("normal", "uniform"):
        raise ValueError(f"dist='{dist}' is not known; choose normal or uniform")
    if dist == "uniform":
        return torch.rand(n, z_dim, generator=generator, device=device).mul_(2).sub_(1)
    return torch.randn(n, z_dim, generator=generator, device=device)


def fixed_inputs(cfg, n: int = 100, seed: int | None = None,
                 label: int | None = None) -> tuple[Tensor, Tensor | None]:
    """The same noise (and labels) every time for a seed: the 10x10 progress grid uses these.

    For conditional models row r of a 10-wide grid shows class r unless ``label`` fixes one."""
    from ganforge.config import Config

    if not isinstance(cfg, Config):
        raise TypeError(f"fixed_inputs needs the run's Config (load_generator returns it), not "
                        f"{type(cfg).__name__}")
    n = whole("n", n, 1)
    k = cfg.model.num_labels
    if label is not None:
        if not k:
            raise ValueError(f"label={label!r}: this model is unconditional and takes none")
        label = whole("label", label, 0, k - 1)
    # torch's generators take -2**63 .. 2**64 - 1: any train.seed plus the loop's offsets
    seed = cfg.train.seed + 12345 if seed is None else whole("seed", seed, -2**63, 2**64 - 1)
    gen = torch.Generator().manual_seed(seed)
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
    A conditional G needs labels ``y``: (N,) ints in 0..num_classes-1, e.g. from
    ``fixed_inputs``, or (N, num_classes) floats, a soft label such as a mix of two one-hots."""
    k, z_dim = getattr(g, "num_classes", 0), getattr(g, "z_dim", None)
    if (not torch.is_tensor(z) or z.dim() != 2 or not z.is_floating_point() or not len(z)
            or z.shape[1] != (z_dim or z.shape[1])):
        got = f"{tuple(z.shape)} {z.dtype}" if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"z must be a float tensor of shape (N, {z_dim or 'z_dim'}) with N >= 1, "
                         f"not {got}")
    batch = whole("batch", batch, 1)
    param = next(g.parameters(), None) if isinstance(g, nn.Module) else None
    if param is None:
        raise TypeError(f"generate needs a generator with weights (load_generator returns one), "
                        f"not {type(g).__name__}")
    if k and y is None:
        raise ValueError(f"this G is conditional: pass labels y, (N,) ints in 0..{k - 1}")
    if not k and y is not None:
        raise ValueError("this G is unconditional and takes no labels: pass y=None")
    if y is not None:
        soft = torch.is_tensor(y) and y.is_floating_point() and y.shape == (len(z), k)
        if not soft and (not torch.is_tensor(y) or y.shape != (len(z),) or y.is_floating_point()
                         or y.dtype == torch.bool or int(y.min()) < 0 or int(y.max()) >= k):
            raise ValueError(f"y must hold one integer label in 0..{k - 1} (or a float row of "
                             f"{k} label weights) for each of the {len(z)} rows of z")
        y = y if soft else y.long()
    # a family registered outside ganforge may take only integer labels: say so in one line
    where = f"G(z, y) with y float label weights (N, {k}), as interpolate gives it between " \
        "labels," if y is not None and soft else "G(z, y)"
    was_training = g.training
    g.eval()
    try:
        out = []
        for i in range(0, len(z), batch):
            yi = None if y is None else y[i: i + batch].to(param.device)
            out.append(call(where, g, z[i: i + batch].to(param.device, param.dtype), yi)
                       .float().cpu())
    finally:
        g.train(was_training)
    return torch.cat(out)
