"""Adversarial losses as pure functions of D's logits (never of probabilities, for stability).

Conventions follow Goodfellow's NIPS 2016 tutorial (seed 004), with D(x) = sigmoid(logit):

    J(D) = -1/2 E_x log D(x) - 1/2 E_z log(1 - D(G(z)))

which is half of the ``d_loss_real + d_loss_fake`` written in carpedm20's DCGAN code (seed 003);
Adam is invariant to that constant factor. Useful identities on logits l:
``-log sigmoid(l) = softplus(-l)`` and ``-log(1 - sigmoid(l)) = softplus(l)``.

To add an objective, write a function that returns one number (a float tensor of shape ()) and
decorate it with ``@D_LOSSES.register(name)`` or ``@G_LOSSES.register(name)``; the training
loop looks it up from ``loss.discriminator`` / ``loss.generator``, and ``train`` calls it once
on D's logits for one batch before it writes the run folder.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.registry import Registry

DLoss = Callable[[Tensor, Tensor], Tensor]
GLoss = Callable[[Tensor], Tensor]

D_LOSSES: Registry[DLoss] = Registry("discriminator loss")
G_LOSSES: Registry[GLoss] = Registry("generator loss")


@D_LOSSES.register("cross-entropy")
def d_cross_entropy(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """J(D) = -1/2 E log D(x) - 1/2 E log(1 - D(G(z)))."""
    return 0.5 * F.softplus(-real_logits).mean() + 0.5 * F.softplus(fake_logits).mean()


@G_LOSSES.register("minimax")
def g_minimax(fake_logits: Tensor) -> Tensor:
    """Saturating J(G) = -J(D) = 1/2 E log(1 - D(G(z))) (the real term has no G gradient)."""
    return -0.5 * F.softplus(fake_logits).mean()


@G_LOSSES.register("non-saturating")
def g_non_saturating(fake_logits: Tensor) -> Tensor:
    """J(G) = -1/2 E log D(G(z)): strong gradients while D still rejects the samples."""
    return 0.5 * F.softplus(-fake_logits).mean()


ML_LOGIT_MAX = 50.0


@G_LOSSES.register("maximum-likelihood")
def g_maximum_likelihood(fake_logits: Tensor) -> Tensor:
    """J(G) = -1/2 E exp(sigma^-1(D(G(z)))) = -1/2 E exp(logit); matches the maximum-likelihood
    gradient when D is optimal (seed 004).

    The logit is capped at ``ML_LOGIT_MAX`` = 50, where D(G(z)) = 1 - 2e-22 (exactly 1 in
    float32): past about 88 exp overflows float32, and one infinite loss turns G's weights to
    NaN. A sample past the cap already fools D completely and gets no gradient."""
    return -0.5 * torch.exp(fake_logits.clamp(max=ML_LOGIT_MAX)).mean()


# --- Wasserstein (Arjovsky et al. 2017): D is a critic; pair with optim.clip_d or a penalty
@D_LOSSES.register("wasserstein")
def d_wasserstein(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """E D(G(z)) - E D(x): the critic maximises the gap (an estimate of W1 when D is 1-Lipschitz)."""
    return fake_logits.mean() - real_logits.mean()


@G_LOSSES.register("wasserstein")
def g_wasserstein(fake_logits: Tensor) -> Tensor:
    """-E D(G(z))."""
    return -fake_logits.mean()


# --- Hinge (Lim & Ye 2017; SAGAN, BigGAN)
@D_LOSSES.register("hinge")
def d_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """E max(0, 1 - D(x)) + E max(0, 1 + D(G(z)))."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


@G_LOSSES.register("hinge")
def g_hinge(fake_logits: Tensor) -> Tensor:
    """-E D(G(z))."""
    return -fake_logits.mean()


# --- Least squares (Mao et al. 2017, targets a=0, b=c=1 on the raw output)
@D_LOSSES.register("least-squares")
def d_least_squares(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2."""
    return 0.5 * (real_logits - 1.0).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()


@G_LOSSES.register("least-squares")
def g_least_squares(fake_logits: Tensor) -> Tensor:
    """1/2 E (D(G(z)) - 1)^2."""
    return 0.5 * (fake_logits - 1.0).pow(2).mean()


# --- Feature matching (Salimans et al. 2016): G matches D's features, not D's verdict
def g_feature_matching(fake_features: Tensor, real_features: Tensor) -> Tensor:
    """|| E f(x) - E f(G(z)) ||^2 with f = D's last hidden layer. Called with features, not
    logits: the loop checks ``uses_features`` and passes D's features instead."""
    return (real_features.mean(0) - fake_features.mean(0)).pow(2).sum()


g_feature_matching.uses_features = True  # type: ignore[attr-defined]
G_LOSSES.register("feature-matching")(g_feature_matching)


# Each D loss bounds a distance between p_data and p_g: for the best D, J(D*) = offset - scale *
# distance, so (offset - J(D)) / scale is at most the distance for any D. (name, offset, scale):
DISTANCE_ESTIMATES = {
    "cross-entropy": ("js_estimate", math.log(2.0), 1.0),  # Jensen-Shannon, 0 .. log 2
    "hinge": ("tv_estimate", 2.0, 2.0),  # total variation 1/2 int |p - q|, 0 .. 1
    "least-squares": ("delta_estimate", 0.25, 0.125),  # triangular int (p - q)^2/(p + q), 0 .. 2
    "wasserstein": ("w_estimate", 0.0, 1.0),  # W1, over 1-Lipschitz critics only
}


def discriminator_stats(real_logits: Tensor, fake_logits: Tensor,
                        loss: str = "cross-entropy") -> dict[str, Tensor]:
    """What a person watches during training, as detached tensors (no host sync here), on the
    scale ``loss`` (loss.discriminator) gives D's output.

    d_real and d_fake: the mean D(x) and D(G(z)), as probabilities for cross-entropy (whose
    output is a logit), raw means otherwise. d_acc: the share D puts on the right side of its
    threshold (a logit above 0, a least-squares output above 1/2, a hinge one above 0); a
    Wasserstein critic has no threshold and logs none.

    One distance estimate, (offset - J(D)) / scale from ``DISTANCE_ESTIMATES`` with J(D) the D
    loss of this batch (without penalties); the best D makes it the distance itself, any other
    D that judges each sample on its own gives a lower bound, which can be negative (batch norm
    in training mode lets D see the rest of its batch, and then it can score above it).
    Cross-entropy: js_estimate = log 2 - J(D) = 1/2 L(D, G) + log 2 with L = E log D(x) +
    E log(1 - D(G(z))) (seed 000), the Jensen-Shannon divergence, log 2 when D separates
    perfectly. Hinge: tv_estimate = 1 - J(D)/2, the total
    variation distance (1 at best; D* = sign(p - q)). Least squares: delta_estimate = 2 - 8 J(D),
    the triangular discrimination int (p - q)^2 / (p + q) (2 at best; D* = p / (p + q)).
    Wasserstein: w_estimate = E D(x) - E D(G(z)) = -J(D), the critic's estimate of W1 (exact
    for the best 1-Lipschitz critic), the curve WGAN watches. A registered loss of another name
    logs no estimate.
    """
    real_logits, fake_logits = real_logits.detach().float(), fake_logits.detach().float()
    if loss == "cross-entropy":
        real_mean, fake_mean = torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()
    else:
        real_mean, fake_mean = real_logits.mean(), fake_logits.mean()
    stats = {"d_real": real_mean, "d_fake": fake_mean}
    if loss != "wasserstein":
        cut = 0.5 if loss == "least-squares" else 0.0
        correct = (real_logits > cut).float().sum() + (fake_logits < cut).float().sum()
        stats = {"d_acc": correct / (real_logits.numel() + fake_logits.numel()), **stats}
    if loss in DISTANCE_ESTIMATES:
        name, offset, scale = DISTANCE_ESTIMATES[loss]
        stats[name] = (offset - D_LOSSES.get(loss)(real_logits, fake_logits)) / scale
    return stats
