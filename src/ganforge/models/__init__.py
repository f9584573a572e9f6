"""Generator / discriminator families, registered by name (``model.arch``).

A family's ``build(cfg)`` returns ``(G, D)``, two ``nn.Module``s, and what the loop and the
commands ask of them is:

- ``G(z, y=None) -> (B, C, H, W)`` in [-1, 1] (``(B, dimensions)`` for toy data), from ``z`` of
  shape ``(B, model.z_dim)``. ``G.num_classes`` is ``model.num_classes`` for a conditional model
  (0 or absent otherwise: ``cfg.model.num_labels`` gives either); ``y`` then holds ``(B,)``
  integer labels, or ``(B, K)`` float label weights where ``ganforge interpolate`` walks between
  labels. ``G.z_dim``, where present, is what ``sample`` checks ``z`` against.
- ``D(x, y=None) -> (B,)`` logits (B / m logits with ``model.pack`` m; ganforge wraps D in
  :class:`~ganforge.models.layers.Packed`, built for m times the input channels).
- Only for the settings that use them: ``D.features(x, y)``, a list of each layer's output
  ending with the logits (``loss.generator=feature-matching``; ``probe``); ``D.blocks``, its
  layers in order (``probe``, ``filters``); ``G.info_loss(z, x)`` (``model.g_components``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.plugins import call
from ganforge.registry import Registry


@dataclass(frozen=True)
class ModelFamily:
    build: Callable[..., tuple[nn.Module, nn.Module]]  # (cfg) -> (G, D)
    check: Callable[..., None] = lambda cfg: None  # raise ConfigError for unsupported settings


MODELS: Registry[ModelFamily] = Registry("model architecture")


def family(cfg) -> ModelFamily:
    """The registered family of ``model.arch``; something else registered there is named."""
    found = MODELS.get(cfg.model.arch)
    if not isinstance(found, ModelFamily):
        raise ConfigError(f"model.arch={cfg.model.arch} is registered as a "
                          f"{type(found).__name__}, not a ganforge.models.ModelFamily(build=...)")
    return found


def build_models(cfg) -> tuple[nn.Module, nn.Module]:
    """(G, D); with ``model.pack`` m > 1 the family builds D for m times the input channels and
    it is wrapped in :class:`~ganforge.models.layers.Packed`."""
    from ganforge.models.layers import Packed

    built = call(f"model.arch={cfg.model.arch}: build(cfg)", family(cfg).build, cfg,
                 source=MODELS.module(cfg.model.arch))
    if not (isinstance(built, (tuple, list)) and len(built) == 2
            and all(isinstance(m, nn.Module) for m in built)):
        got = f"({', '.join(type(m).__name__ for m in built)})" \
            if isinstance(built, (tuple, list)) else type(built).__name__
        raise ConfigError(f"model.arch={cfg.model.arch}: build(cfg) must return (G, D), two "
                          f"torch modules, not {got}")
    g, d = built
    return (g, Packed(d, cfg.model.pack)) if cfg.model.pack > 1 else (g, d)


def uses_info(cfg) -> bool:
    """Whether G's loss adds the mixture's Q term, ``G.info_loss`` (``model.g_components``)."""
    return cfg.model.g_components > 1 and cfg.loss.info_weight > 0


def check_outputs(g: nn.Module, d: nn.Module, cfg, data, device: torch.device,
                  batch: int | None = None) -> None:
    """What the loop asks of G, D and the losses (the module docstring), checked before a run
    folder is written: the attributes the settings use; G and D once on 2 noise vectors (2 packs
    with ``model.pack``), in eval mode; then the losses, the penalty and G.info_loss once on
    what they gave, repeated to ``batch`` samples (a step's per-process batch, which a loss may
    need; 2 packs by default). Weights, buffers, gradients, train modes and random states are
    as they were after it (state a plugin keeps in Python is its own). A family or loss that
    does not fit is a one-line error, not a traceback at the first step or picture (after
    ``--overwrite`` had removed the old run) or a loss broadcast over the wrong shape."""
    from ganforge.losses import G_LOSSES
    from ganforge.models.layers import Packed

    arch, m = f"model.arch={cfg.model.arch}", cfg.model
    k = m.num_labels
    if (getattr(g, "num_classes", 0) or 0) != k:
        raise ConfigError(f"{arch}: G.num_classes is {getattr(g, 'num_classes', None)}; with "
                          f"model.conditional={str(m.conditional).lower()} it must be {k} (the "
                          f"labels G takes{'' if k else ', 0 or absent for an unconditional G'})")
    if getattr(g, "z_dim", m.z_dim) != m.z_dim:
        raise ConfigError(f"{arch}: G.z_dim is {g.z_dim}, but model.z_dim={m.z_dim}")
    inner = d.d if isinstance(d, Packed) else d  # Packed passes features on
    features = getattr(G_LOSSES.get(cfg.loss.generator), "uses_features", False)
    info = uses_info(cfg)
    needs = [("D", inner, "features", features, f"loss.generator={cfg.loss.generator}"),
             ("G", g, "info_loss", info, f"model.g_components={m.g_components}")]
    for who, module, name, used, setting in needs:
        if used and not callable(getattr(module, name, None)):
            raise ConfigError(f"{arch}: {setting} needs {who}.{name}, which this family's "
                              f"{who} does not have")
    pack = m.pack
    n = 2 * pack
    want = (n, data.dim) if data.kind == "toy" else \
        (n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    z = torch.zeros(n, m.z_dim, device=device)
    y = torch.zeros(n, dtype=torch.long, device=device) if m.conditional else None
    source = MODELS.module(cfg.model.arch)
    with _kept((g, d), device):
        g.eval(), d.eval()
        with torch.no_grad():
            fake = call(f"{arch}: G(z, y)", g, z, y, source=source)
            if not torch.is_tensor(fake) or tuple(fake.shape) != want:
                got = tuple(fake.shape) if torch.is_tensor(fake) else type(fake).__name__
                form = "(N, dimensions)" if data.kind == "toy" else \
                    "(N, data.channels, data.image_size, data.image_size)"
                raise ConfigError(f"{arch}: G gives {got} for {n} noise vectors; the data "
                                  f"needs {want}, {form}")
            logits = call(f"{arch}: D(x, y)", d, fake, y, source=source)
            if not torch.is_tensor(logits) or tuple(logits.shape) != (n // pack,):
                got = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
                each = f"pack of model.pack={pack} samples" if pack > 1 else "sample"
                raise ConfigError(f"{arch}: D gives {got} for {n} samples; it must give one "
                                  f"logit per {each}, shape {(n // pack,)}")
            feats = None
            if features:
                feats = call(f"{arch}: D.features(x, y)", d.features, fake, y, source=source)
                if not (isinstance(feats, (list, tuple)) and len(feats) >= 2
                        and all(torch.is_tensor(f) for f in feats)):
                    raise ConfigError(f"{arch}: D.features(x, y) must give a list of each "
                                      "layer's output ending with the logits")
                feats = feats[-2]  # as the loop uses them: D's layer before the logits
            # a step's batch of each (all alike: the noise is zeros), for a loss that needs it
            wide = batch or n
            per_pack = torch.arange(wide // pack, device=device) % (n // pack)
            each = torch.arange(wide, device=device) % n
            z, fake, y = z[each], fake[each], None if y is None else y[each]
            logits, feats = logits[per_pack], None if feats is None else feats[per_pack]
            _check_losses(cfg, g, z, fake, logits, feats, info)
        _check_penalty(cfg, d, fake, y, device)


@contextmanager
def _kept(modules, device: torch.device):
    """Run the block and put back what it may change: each module's train mode, gradients and
    buffers (their values, and any a forward replaced, added or removed), and torch's random
    states (CPU, and the device's)."""
    from torch.nn.parameter import is_lazy

    subs = [sub for mod in modules for sub in mod.modules()]
    modes = [(sub, sub.training) for sub in subs]
    buffers = [(sub, dict(sub._buffers), set(sub._non_persistent_buffers_set),
                {k: b.clone() for k, b in sub._buffers.items()
                 if b is not None and not is_lazy(b)}) for sub in subs]
    grads = [(p, p.grad) for mod in modules for p in mod.parameters()]
    mps = torch.mps.get_rng_state() if device.type == "mps" else None
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield
    finally:
        for sub, mode in modes:
            sub.training = mode
        with torch.no_grad():
            for sub, held, transient, values in buffers:
                sub._buffers.clear()
                sub._buffers.update(held)
                sub._non_persistent_buffers_set.clear()
                sub._non_persistent_buffers_set.update(transient)
                for k, was in values.items():
                    held[k].copy_(was)
        for p, grad in grads:
            p.grad = grad
        if mps is not None:
            torch.mps.set_rng_state(mps)


def _one_number(out, what: str) -> None:
    if not (torch.is_tensor(out) and out.numel() == 1 and out.is_floating_point()):
        got = f"{tuple(out.shape)} {out.dtype}" if torch.is_tensor(out) else type(out).__name__
        raise ConfigError(f"{what} gives {got}; it must give one number, a float tensor of shape "
                          "() (e.g. a .mean() over the batch)")


def _check_losses(cfg, g, z, fake, logits, feats, info: bool) -> None:
    """The configured D and G losses (and the mixture's Q term) once on the check's logits
    (D's features for feature matching)."""
    from ganforge.losses import D_LOSSES, G_LOSSES

    key = cfg.loss.discriminator
    name = f"loss.discriminator={key}"
    _one_number(call(f"{name}: d_loss(real_logits, fake_logits)", D_LOSSES.get(key), logits,
                     logits, source=D_LOSSES.module(key)), name)
    key = cfg.loss.generator
    name, fn, source = f"loss.generator={key}", G_LOSSES.get(key), G_LOSSES.module(key)
    if feats is not None:
        _one_number(call(f"{name}: g_loss(fake_features, real_features)", fn, feats, feats,
                         source=source), name)
    else:
        _one_number(call(f"{name}: g_loss(fake_logits)", fn, logits, source=source), name)
    if info:
        what = f"model.arch={cfg.model.arch}: G.info_loss(z, x)"
        _one_number(call(what, g.info_loss, z, fake, source=MODELS.module(cfg.model.arch)),
                    what)


def _check_penalty(cfg, d, fake, y, device) -> None:
    """``loss.penalty`` once, with gradients (a penalty differentiates D), on the check's
    samples as both real and fake, drawing from a generator of its own."""
    from ganforge.losses import PENALTIES

    key = cfg.loss.penalty
    if key == "none":
        return
    name = f"loss.penalty={key}"
    noise = torch.Generator(device=device).manual_seed(0)
    out = call(f"{name}: penalty(d, real, fake, y, generator)", PENALTIES.get(key), d, fake,
               fake, y, noise, source=PENALTIES.module(key))
    _one_number(out, name)


# Importing the modules registers the families.
from ganforge.models import dcgan, mlp  # noqa: E402,F401

__all__ = ["MODELS", "ModelFamily", "build_models", "check_outputs", "family", "uses_info"]
