"""Gradient penalties on D, registered by name (``loss.penalty``), weighted by
``loss.penalty_weight`` and added to D's loss by the loop.

Each is ``penalty(d, real, fake, y, generator) -> Tensor`` of shape (); ``generator`` is the
run's seeded noise generator, so penalised runs still resume exactly.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ganforge.registry import Registry

Penalty = Callable[[nn.Module, Tensor, Tensor, "Tensor | None", torch.Generator], Tensor]
PENALTIES: Registry[Penalty] = Registry("gradient penalty", reserved=("none",))


def _per_input_uniform(d: nn.Module, x: Tensor, generator: torch.Generator) -> Tensor:
    """U(0, 1) with shape (B, 1, 1, ...), one value per input of D: per sample, or per pack for
    a packed D (whose input point is the whole pack, so the pack moves along one line)."""
    pack = getattr(d, "pack", 1)
    shape = (x.shape[0] // pack,) + (1,) * (x.ndim - 1)
    a = torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)
    return a if pack == 1 else a.repeat_interleave(pack, dim=0)


def _grad_norm(d: nn.Module, points: Tensor, y: Tensor | None) -> Tensor:
    """||grad_x D(x)|| per sample (per pack for a packed D, whose input is the whole pack),
    differentiable (create_graph) so the penalty trains D."""
    points = points.detach().requires_grad_(True)
    # D runs on copies of its buffers (in the built-in models, batch-norm running statistics):
    # this extra forward (of real images, or of points between real and fake) would move them
    # towards those points, and D in eval mode (the probe of D's features) reads them. Training
    # mode normalises by each batch's own statistics, so the penalty and its gradients are the
    # same either way. (A registered D whose forward advances a buffer, as spectral norm's
    # power iteration does, advances it only in D's own passes.)
    kept = {name: b.clone() for name, b in d.named_buffers()}
    out = torch.func.functional_call(d, kept, (points, y))
    (grad,) = torch.autograd.grad(out.sum(), points, create_graph=True)
    return grad.reshape(len(grad) // getattr(d, "pack", 1), -1).norm(dim=1)  # (B,) or (B / m,)


@PENALTIES.register("wgan-gp")
def wgan_gp(d: nn.Module, real: Tensor, fake: Tensor, y: Tensor | None,
            generator: torch.Generator) -> Tensor:
    """Gulrajani et al. 2017: E (||grad D(x_hat)|| - 1)^2 on x_hat = a x + (1 - a) G(z), a ~ U(0, 1):
    points along lines between real and generated samples (packs, for a packed D), over the
    whole space between them."""
    a = _per_input_uniform(d, real, generator)
    return (_grad_norm(d, a * real + (1 - a) * fake.detach(), y) - 1).pow(2).mean()


@PENALTIES.register("dragan")
def dragan(d: nn.Module, real: Tensor, fake: Tensor, y: Tensor | None,
           generator: torch.Generator) -> Tensor:
    """Kodali et al. 2017: the same penalty, but only near the data: x_hat = x + a * delta with
    delta = 0.5 * std(x) * U(0, 1) noise (the authors' reference code), a ~ U(0, 1)."""
    noise = torch.rand(real.shape, generator=generator, device=real.device, dtype=real.dtype)
    perturbed = real + 0.5 * real.std() * noise
    a = _per_input_uniform(d, real, generator)
    return (_grad_norm(d, real + a * (perturbed - real), y) - 1).pow(2).mean()


@PENALTIES.register("r1")
def r1(d: nn.Module, real: Tensor, fake: Tensor, y: Tensor | None,
       generator: torch.Generator) -> Tensor:
    """Mescheder et al. 2018: 1/2 E ||grad D(x)||^2 on real data (zero-centred)."""
    return 0.5 * _grad_norm(d, real, y).pow(2).mean()
