"""The mode-collapse-lab objectives (wasserstein, hinge, least-squares, feature matching) against
numbers worked out by hand on explicit logits; nothing here re-implements a formula with torch.

REAL = [2.0, -1.0] and FAKE = [0.5, -3.0] as in test_losses.py:
    mean(REAL) = 0.5, mean(FAKE) = -1.25
"""
import pytest
import torch

from ganforge.losses import D_LOSSES, G_LOSSES

REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]


def t(xs, grad: bool = False):
    return torch.tensor(xs, dtype=torch.float32, requires_grad=grad)


def test_the_lab_losses_are_registered():
    assert {"wasserstein", "hinge", "least-squares"} <= set(D_LOSSES.names())
    assert {"wasserstein", "hinge", "least-squares", "feature-matching"} <= set(G_LOSSES.names())
    assert "feature-matching" not in D_LOSSES.names()  # a G-only objective


# ----------------------------------------------------------------------------- discriminator

D_BY_HAND = {
    # E D(G(z)) - E D(x) = -1.25 - 0.5
    "wasserstein": -1.75,
    # E max(0, 1 - D(x)) = (max(0, -1) + max(0, 2)) / 2 = 1.0
    # E max(0, 1 + D(G(z))) = (max(0, 1.5) + max(0, -2)) / 2 = 0.75
    "hinge": 1.75,
    # 1/2 E (D(x) - 1)^2 = 1/2 (1 + 4) / 2 = 1.25 ;  1/2 E D(G(z))^2 = 1/2 (0.25 + 9) / 2 = 2.3125
    "least-squares": 3.5625,
}


@pytest.mark.parametrize("name", sorted(D_BY_HAND))
def test_d_losses_by_hand(name):
    got = D_LOSSES.get(name)(t(REAL), t(FAKE))
    assert got.shape == ()
    assert got.item() == pytest.approx(D_BY_HAND[name], abs=1e-6)


def test_d_losses_other_numbers():
    real, fake = t([0.5, 3.0, -2.0, 1.5]), t([-0.5, -2.0, 1.0, 0.0])
    # wasserstein: mean(fake) = -0.375, mean(real) = 0.75
    assert D_LOSSES.get("wasserstein")(real, fake).item() == pytest.approx(-1.125)
    # hinge: real terms 0.5, 0, 3, 0 -> 0.875 ; fake terms 0.5, 0, 2, 1 -> 0.875
    assert D_LOSSES.get("hinge")(real, fake).item() == pytest.approx(1.75)
    # least-squares: (0.25 + 4 + 9 + 0.25) / 8 = 1.6875 ; (0.25 + 4 + 1 + 0) / 8 = 0.65625
    assert D_LOSSES.get("least-squares")(real, fake).item() == pytest.approx(2.34375)


def test_hinge_is_zero_beyond_the_margins():
    # D(x) >= 1 and D(G(z)) <= -1 everywhere: nothing to learn
    assert D_LOSSES.get("hinge")(t([1.0, 5.0]), t([-1.0, -7.0])).item() == 0.0
    # the wasserstein critic has no margin: it keeps pushing the same logits apart
    assert D_LOSSES.get("wasserstein")(t([1.0, 5.0]), t([-1.0, -7.0])).item() == -7.0


def test_least_squares_optimum_is_zero():
    assert D_LOSSES.get("least-squares")(t([1.0, 1.0]), t([0.0, 0.0])).item() == 0.0
    assert G_LOSSES.get("least-squares")(t([1.0, 1.0, 1.0])).item() == 0.0


def test_d_gradients_by_hand():
    real, fake = t(REAL, grad=True), t(FAKE, grad=True)
    D_LOSSES.get("wasserstein")(real, fake).backward()
    assert real.grad.tolist() == [-0.5, -0.5] and fake.grad.tolist() == [0.5, 0.5]

    real, fake = t(REAL, grad=True), t(FAKE, grad=True)
    D_LOSSES.get("hinge")(real, fake).backward()
    # only the terms inside their margin contribute, each with slope 1/2
    assert real.grad.tolist() == [0.0, -0.5] and fake.grad.tolist() == [0.5, 0.0]

    real, fake = t(REAL, grad=True), t(FAKE, grad=True)
    D_LOSSES.get("least-squares")(real, fake).backward()
    # d/dr 1/2 (r - 1)^2 / 2 = (r - 1) / 2 ;  d/df 1/2 f^2 / 2 = f / 2
    assert real.grad.tolist() == [0.5, -1.0] and fake.grad.tolist() == [0.25, -1.5]


# ----------------------------------------------------------------------------- generator

G_BY_HAND = {
    "wasserstein": 1.25,  # -E D(G(z)) = 1.25
    "hinge": 1.25,  # the same
    "least-squares": 4.0625,  # 1/2 ((0.5 - 1)^2 + (-3 - 1)^2) / 2 = 1/2 (0.25 + 16) / 2
}


@pytest.mark.parametrize("name", sorted(G_BY_HAND))
def test_g_losses_by_hand(name):
    got = G_LOSSES.get(name)(t(FAKE))
    assert got.shape == ()
    assert got.item() == pytest.approx(G_BY_HAND[name], abs=1e-6)


@pytest.mark.parametrize("name,fake,expected", [
    ("wasserstein", [4.0], -4.0),
    ("hinge", [-2.0, 0.0, 5.0], -1.0),
    ("least-squares", [3.0, -1.0, 1.0], 4.0 / 3.0),  # 1/2 (4 + 4 + 0) / 3
])
def test_g_losses_other_numbers(name, fake, expected):
    assert G_LOSSES.get(name)(t(fake)).item() == pytest.approx(expected)


def test_g_gradients_by_hand():
    fake = t(FAKE, grad=True)
    G_LOSSES.get("wasserstein")(fake).backward()
    assert fake.grad.tolist() == [-0.5, -0.5]
    fake = t(FAKE, grad=True)
    G_LOSSES.get("least-squares")(fake).backward()
    assert fake.grad.tolist() == [-0.25, -2.0]  # (f - 1) / 2


# ----------------------------------------------------------------------------- feature matching

FM = G_LOSSES.get("feature-matching")


def test_feature_matching_is_marked_for_features():
    assert getattr(FM, "uses_features", False) is True
    for name in ("wasserstein", "hinge", "least-squares", "non-saturating"):
        assert not getattr(G_LOSSES.get(name), "uses_features", False)


def test_feature_matching_by_hand():
    real = t([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = t([[0.0, 0.0], [2.0, 2.0]], grad=True)  # mean (1, 1)
    loss = FM(fake, real)  # called as (fake_features, real_features)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(5.0)  # (2 - 1)^2 + (3 - 1)^2
    loss.backward()
    # d/dfake_i = -2 (mean_real - mean_fake) / N = -(1, 2) for both rows
    assert fake.grad.tolist() == [[-1.0, -2.0], [-1.0, -2.0]]


def test_feature_matching_matches_means_not_samples():
    real = t([[1.0, -1.0, 0.0], [3.0, 1.0, 2.0]])  # mean (2, 0, 1)
    # different samples with the same mean: nothing to match
    assert FM(t([[2.0, 0.0, 1.0], [2.0, 0.0, 1.0]]), real).item() == 0.0
    assert FM(t([[0.0, 5.0, 1.0], [4.0, -5.0, 1.0]]), real).item() == 0.0
    # batch sizes may differ; mean of fake (0, 0, 0): 4 + 0 + 1
    assert FM(t([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]]), real).item() == \
        pytest.approx(5.0)
