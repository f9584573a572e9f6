"""Generator / discriminator families, registered by name (``model.arch``).

Every generator is called as ``G(z, y=None) -> (B, C, H, W)`` in [-1, 1] and every
discriminator as ``D(x, y=None) -> (B,)`` logits; ``y`` holds integer labels for conditional
models and is ignored otherwise.
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
    return MODELS.get(cfg.model.arch).build(cfg)


# Importing the modules registers the families.
from ganforge.models import dcgan, mlp  # noqa: E402,F401

__all__ = ["MODELS", "ModelFamily", "build_models"]
