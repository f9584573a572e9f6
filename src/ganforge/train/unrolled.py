"""Unrolled GAN surrogate (Metz et al. 2016, seed 002).

D's own update is unchanged. G's loss is evaluated against D_K, a functional copy of D advanced
K optimiser steps ahead with the *same* rule D trains with (Adam, starting from D's current moment
estimates and step counts), and G's gradient flows back through those K steps:

    theta_D^0 = theta_D
    theta_D^{k+1} = AdamStep(theta_D^k, grad_{theta_D} d_loss(D(real; theta^k), D(fake; theta^k)))
    g_loss = g_loss_fn(D(fake; theta_D^K)),   fake = G(z)  (G's graph kept throughout)

with PyTorch's Adam (weight decay 0), for every parameter that D's loss reaches:

    t += 1;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
    step = lr / (1 - b1^t);  denom = sqrt(v) / sqrt(1 - b2^t) + eps;  p = p - step * m / denom

Every unroll step uses the same ``real`` minibatch and the same ``fake`` tensor (carrying G's
graph), as in Metz et al.'s reference implementation, which unrolls on the current minibatch
rather than drawing new data per step. Parameters that get no gradient from D's loss, or that
opt_d does not hold, are left unchanged and their Adam state does not advance (as in Adam).

Nothing of ``d`` or ``opt_d`` is modified: the unroll runs through ``torch.func.functional_call``
on detached copies of D's parameters and on a copy of its buffers (so batch-norm running
statistics are not updated), and the Adam state is only read. Because D_K starts from detached
parameters, ``g_loss.backward()`` leaves ``d``'s ``.grad`` untouched.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ganforge.errors import ConfigError

DLoss = Callable[[Tensor, Tensor], Tensor]


def _adam_groups(d: nn.Module, opt_d: torch.optim.Optimizer) -> dict[str, dict]:
    """Parameter name -> its Adam hyperparameters (lr, betas, eps), for D's parameters in opt_d.
    Raises ConfigError for anything other than plain Adam."""
    if not isinstance(opt_d, torch.optim.Adam):
        raise ConfigError(f"unrolled D steps need D's optimiser to be Adam, got "
                          f"{type(opt_d).__name__}")
    by_id: dict[int, dict] = {}
    for group in opt_d.param_groups:
        if group.get("amsgrad") or group.get("maximize") or float(group.get("weight_decay", 0)):
            raise ConfigError("unrolled D steps support plain Adam only (amsgrad=False, "
                              "maximize=False, weight_decay=0)")
        hyper = {"lr": float(group["lr"]), "b1": float(group["betas"][0]),
                 "b2": float(group["betas"][1]), "eps": float(group["eps"])}
        by_id.update({id(p): hyper for p in group["params"]})
    return {name: by_id[id(p)] for name, p in d.named_parameters() if id(p) in by_id}


def _sqrt(v: Tensor) -> Tensor:
    """sqrt(v) whose gradient is 0 (not inf * 0 = nan) where v == 0."""
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, torch.ones_like(v)).sqrt(),
                       torch.zeros_like(v))


def _adam_step(p: Tensor, g: Tensor, moments: tuple[int, Tensor, Tensor], h: dict[str, float],
               clip: float | None) -> tuple[Tensor, tuple[int, Tensor, Tensor]]:
    """One differentiable step of torch.optim.Adam (weight decay 0), then optional clamping."""
    t, m, v = moments
    t += 1
    m = h["b1"] * m + (1 - h["b1"]) * g
    v = h["b2"] * v + (1 - h["b2"]) * g * g
    step_size = h["lr"] / (1 - h["b1"] ** t)
    denom = _sqrt(v) / math.sqrt(1 - h["b2"] ** t) + h["eps"]
    p = p - step_size * (m / denom)
    return (p.clamp(-clip, clip) if clip is not None else p), (t, m, v)


def unrolled_fake_logits(d: nn.Module, opt_d: torch.optim.Optimizer, d_loss_fn: DLoss,
                         real: Tensor, fake: Tensor, y: Tensor | None, steps: int,
                         first_order: bool = False, clip: float | None = None) -> Tensor:
    """Logits of D_K(fake), where D_K is D advanced `steps` optimiser steps on
    d_loss_fn(D(real, y), D(fake, y)). `fake` carries G's graph. With first_order=False the
    D updates are differentiated through (create_graph=True), so d(g_loss)/d(theta_G) includes
    how D would react; with first_order=True the unrolled parameters are detached after each
    step (the cheaper variant: G sees D_K but not the path). steps=0 returns d(fake, y) exactly.
    `clip` (WGAN weight clipping) clamps D_K's parameters after each step when not None."""
    if steps < 0:
        raise ConfigError(f"unrolled steps must be >= 0, got {steps}")
    hyper = _adam_groups(d, opt_d)
    params = {name: p.detach() for name, p in d.named_parameters()}
    buffers = {name: b.clone() for name, b in d.named_buffers()}
    names = list(hyper)  # the parameters Adam would update
    moments: dict[str, tuple[int, Tensor, Tensor]] = {}
    for name, p in d.named_parameters():
        if name in hyper:
            state = opt_d.state.get(p, {})
            if "step" in state:
                moments[name] = (int(state["step"]), state["exp_avg"].detach().clone(),
                                 state["exp_avg_sq"].detach().clone())
            else:
                moments[name] = (0, torch.zeros_like(p), torch.zeros_like(p))
    fake_d = fake.detach() if first_order else fake

    with torch.enable_grad():  # D's gradients are needed even when called under no_grad
        for k in range(steps if names else 0):  # nothing to update: D_K = D
            if first_order or k == 0:  # fresh leaves; else keep the path through earlier steps
                params = {n: p.detach().requires_grad_(n in hyper) for n, p in params.items()}
            d_loss = d_loss_fn(functional_call(d, (params, buffers), (real, y)),
                               functional_call(d, (params, buffers), (fake_d, y)))
            grads = torch.autograd.grad(d_loss, [params[n] for n in names],
                                        create_graph=not first_order, allow_unused=True)
            for name, g in zip(names, grads):
                if g is not None:  # no gradient: Adam leaves the parameter and its state alone
                    params[name], moments[name] = _adam_step(params[name], g, moments[name],
                                                             hyper[name], clip)

    if first_order:
        params = {n: p.detach() for n, p in params.items()}
    return functional_call(d, (params, buffers), (fake, y))
