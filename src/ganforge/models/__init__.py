"""Generator / discriminator families, registered by name (``model.arch``).

Every generator is called as ``G(z, y=None) -> (B, C, H, W)`` in [-1, 1] and every
discriminator as ``D(x, y=None) -> (B,)`` logits (B / m logits with ``model.pack`` m); ``y``
holds integer labels for conditional models and is ignored otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

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


# Importing the modules registers the families.
from ganforge.models import dcgan, mlp  # noqa: E402,F401

__all__ = ["MODELS", "ModelFamily", "build_models"]
