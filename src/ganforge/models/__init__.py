"""Generator / discriminator families, registered by name (``model.arch``).

Every generator is called as ``G(z, y=None) -> (B, C, H, W)`` in [-1, 1] and every
discriminator as ``D(x, y=None) -> (B,)`` logits (B / m logits with ``model.pack`` m); ``y``
holds integer labels for conditional models and is ignored otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.registry import Registry


@dataclass(frozen=True)
class ModelFamily:
    build: Callable[..., tuple[nn.Module, nn.Module]]  # (cfg) -> (G, D)
    check: Callable[..., None] = lambda cfg: None  # raise ConfigError for unsupported settings


MODELS: Registry[ModelFamily] = Registry("model architecture")


def build_models(cfg) -> tuple[nn.Module, nn.Module]:
    """(G, D); with ``model.pack`` m > 1 the family builds D for m times the input channels and
    it is wrapped in :class:`~ganforge.models.layers.Packed`."""
    from ganforge.models.layers import Packed

    g, d = MODELS.get(cfg.model.arch).build(cfg)
    return (g, Packed(d, cfg.model.pack)) if cfg.model.pack > 1 else (g, d)


def check_outputs(g: nn.Module, d: nn.Module, cfg, data) -> None:
    """G and D once on 2 noise vectors (2 packs with ``model.pack``), in eval mode and without
    gradients, so that no weight, batch-norm statistic or random state changes: a family whose
    G gives other samples than the data's, or whose D gives other than one logit per sample (or
    pack), is a one-line ConfigError before a run folder is written, not a traceback at the
    first picture or a loss broadcast over the wrong shape."""
    pack = cfg.model.pack
    n = 2 * pack
    device = next(g.parameters()).device
    want = (n, data.dim) if data.kind == "toy" else \
        (n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    z = torch.zeros(n, cfg.model.z_dim, device=device)
    y = torch.zeros(n, dtype=torch.long, device=device) if cfg.model.conditional else None
    arch, modes = f"model.arch={cfg.model.arch}", (g.training, d.training)
    g.eval(), d.eval()
    try:
        with torch.no_grad():
            fake = g(z, y)
            if not torch.is_tensor(fake) or tuple(fake.shape) != want:
                got = tuple(fake.shape) if torch.is_tensor(fake) else type(fake).__name__
                form = "(N, dimensions)" if data.kind == "toy" else \
                    "(N, data.channels, data.image_size, data.image_size)"
                raise ConfigError(f"{arch}: G gives {got} for {n} noise vectors; the data needs "
                                  f"{want}, {form}")
            logits = d(fake, y)
    finally:
        g.train(modes[0]), d.train(modes[1])
    if not torch.is_tensor(logits) or tuple(logits.shape) != (n // pack,):
        got = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        each = f"pack of model.pack={pack} samples" if pack > 1 else "sample"
        raise ConfigError(f"{arch}: D gives {got} for {n} samples; it must give one logit per "
                          f"{each}, shape {(n // pack,)}")


# Importing the modules registers the families.
from ganforge.models import dcgan, mlp  # noqa: E402,F401

__all__ = ["MODELS", "ModelFamily", "build_models", "check_outputs"]
