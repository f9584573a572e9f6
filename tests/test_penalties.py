"""Gradient penalties (losses/penalties.py) on discriminators whose input gradient is known in
closed form.

A linear D(x) = w.x + b has grad_x D = w at every point, so wherever the penalty looks:
    wgan-gp = dragan = (||w|| - 1)^2,   r1 = 1/2 ||w||^2.
With w = (3, 4), ||w|| = 5: wgan-gp = dragan = 16, r1 = 12.5.
A quadratic D(x) = 1/2 ||x||^2 has grad_x D = x, so the penalty depends on where it looks.
"""
import math

import pytest
import torch
from torch import nn

from ganforge.losses import PENALTIES

NAMES = ("wgan-gp", "dragan", "r1")


class Linear(nn.Module):
    """D(x) = <w, x> + b over all non-batch dimensions; records the labels it was given."""

    def __init__(self, w: torch.Tensor, b: float = 0.3):
        super().__init__()
        self.w = nn.Parameter(w.clone().float())
        self.b = nn.Parameter(torch.tensor(b))
        self.seen_y = []

    def forward(self, x, y=None):
        self.seen_y.append(y)
        return (x * self.w).flatten(1).sum(1) + self.b


class Quadratic(nn.Module):
    """D(x) = s/2 ||x||^2: grad_x D = s x."""

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(1.0))

    def forward(self, x, y=None):
        return 0.5 * self.s * x.flatten(1).pow(2).sum(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(shape=(16, 2), seed: int = 1):
    g = gen(seed)
    return torch.randn(*shape, generator=g), torch.randn(*shape, generator=g) * 3 + 1


def test_registered():
    assert set(NAMES) <= set(PENALTIES.names())


@pytest.mark.parametrize("name,expected", [("wgan-gp", 16.0), ("dragan", 16.0), ("r1", 12.5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_d_by_hand(name, expected, seed):
    d = Linear(torch.tensor([3.0, 4.0]))
    real, fake = batch(seed=seed + 10)
    got = PENALTIES.get(name)(d, real, fake, None, gen(seed))
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("w,gp,r1", [
    ([0.6, 0.8], 0.0, 0.5),  # a 1-Lipschitz critic: no gradient penalty
    ([0.0, 0.5], 0.25, 0.125),
    ([0.0, 0.0], 1.0, 0.0),  # a constant D: r1 is happy, wgan-gp wants slope 1
])
def test_linear_d_other_slopes(w, gp, r1):
    d = Linear(torch.tensor(w))
    real, fake = batch()
    assert PENALTIES.get("wgan-gp")(d, real, fake, None, gen()).item() == pytest.approx(gp, abs=1e-6)
    assert PENALTIES.get("dragan")(d, real, fake, None, gen()).item() == pytest.approx(gp, abs=1e-6)
    assert PENALTIES.get("r1")(d, real, fake, None, gen()).item() == pytest.approx(r1, abs=1e-6)


def test_gradients_reach_d_parameters_by_hand():
    """d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (0.6, 0.8) = (4.8, 6.4);
    d/dw 1/2 ||w||^2 = w = (3, 4). b does not change the slope: zero gradient."""
    real, fake = batch()
    for name, expected in (("wgan-gp", [4.8, 6.4]), ("dragan", [4.8, 6.4]), ("r1", [3.0, 4.0])):
        d = Linear(torch.tensor([3.0, 4.0]))
        PENALTIES.get(name)(d, real, fake, None, gen()).backward()
        assert d.w.grad is not None, name
        assert d.w.grad.tolist() == pytest.approx(expected, rel=1e-5), name
        assert d.b.grad is None or d.b.grad.item() == 0.0


def test_penalty_trains_d_only():
    """The penalty must not push gradients into G's samples or the real batch."""
    d = Linear(torch.tensor([3.0, 4.0]))
    real, fake = batch()
    fake = fake.clone().requires_grad_(True)
    real = real.clone().requires_grad_(True)
    for name in NAMES:
        PENALTIES.get(name)(d, real, fake, None, gen()).backward()
    assert fake.grad is None and real.grad is None
    assert d.w.grad.abs().sum() > 0


def test_labels_are_passed_to_d():
    d = Linear(torch.tensor([3.0, 4.0]))
    real, fake = batch()
    y = torch.arange(16)
    for name in NAMES:
        d.seen_y.clear()
        PENALTIES.get(name)(d, real, fake, y, gen())
        assert d.seen_y and all(s is y for s in d.seen_y), name


def test_wgan_gp_looks_between_real_and_fake():
    """Quadratic D: the gradient norm at x_hat is ||x_hat||. With real = (1, 0) and
    fake = (3, 0), x_hat = (3 - 2a, 0) with a ~ U(0, 1), so the penalty per sample is
    (2 - 2a)^2, between 0 and 4, with mean 4 E (1 - a)^2 = 4/3."""
    d = Quadratic()
    n = 20000
    real = torch.tensor([1.0, 0.0]).repeat(n, 1)
    fake = torch.tensor([3.0, 0.0]).repeat(n, 1)
    got = PENALTIES.get("wgan-gp")(d, real, fake, None, gen(3)).item()
    assert got == pytest.approx(4 / 3, abs=0.05)
    # one sample at a time: always inside [0, 4]
    for seed in range(20):
        v = PENALTIES.get("wgan-gp")(d, real[:1], fake[:1], None, gen(seed)).item()
        assert 0.0 <= v <= 4.0 + 1e-6
    # when real and fake coincide every interpolation is that point: (||p|| - 1)^2 exactly,
    # here ((3 - 1)^2 + (4 - 1)^2) / 2
    p = torch.tensor([[0.0, 3.0], [4.0, 0.0]])
    assert PENALTIES.get("wgan-gp")(d, p, p.clone(), None, gen(7)).item() == pytest.approx(6.5)


def test_dragan_looks_near_the_data_only():
    """Quadratic D, all real points at (2, 0): x_hat = real + a * 0.5 * std(real) * U(0, 1).
    std(real) is taken over all entries, half 2 and half 0: 1.0. Each coordinate moves by at
    most 0.5, so ||x_hat|| lies in [2, sqrt(2.5^2 + 0.5^2)] and the penalty per sample in
    [1, (sqrt(6.5) - 1)^2]; G's samples (fake) play no part."""
    d = Quadratic()
    n = 4000
    real = torch.tensor([2.0, 0.0]).repeat(n, 1)
    assert real.std().item() == pytest.approx(1.0, abs=1e-3)
    far = torch.full((n, 2), 100.0)
    near = real.clone()
    a = PENALTIES.get("dragan")(d, real, far, None, gen(5)).item()
    b = PENALTIES.get("dragan")(d, real, near, None, gen(5)).item()
    assert a == b  # the fake batch is ignored
    assert 1.0 < a < (math.sqrt(6.5) - 1) ** 2
    for seed in range(10):
        v = PENALTIES.get("dragan")(d, real[:2], far[:2], None, gen(seed)).item()
        assert 1.0 - 1e-6 <= v <= (math.sqrt(6.5) - 1) ** 2 + 1e-6


def test_dragan_perturbation_scales_with_the_data_std():
    """Quadratic D (gradient x), real points all at (4, 0): std(real) over all entries is 2
    (half 4, half 0), so x_hat = real + a * 0.5 * 2 * U(0, 1) moves each coordinate by
    a * u in [0, 1] (mean 1/4), not by at most 0.5 as a perturbation of 0.5 * noise would."""
    seen = []

    class Spy(Quadratic):
        def forward(self, x, y=None):
            seen.append(x.detach().clone())
            return super().forward(x, y)

    n = 4000
    real = torch.tensor([4.0, 0.0]).repeat(n, 1)
    bound = 0.5 * real.std().item()
    assert bound == pytest.approx(1.0, abs=1e-3)
    value = PENALTIES.get("dragan")(Spy(), real, real.clone(), None, gen(5)).item()
    (x_hat,) = seen
    offset = x_hat - real
    assert offset.min().item() >= 0.0 and offset.max().item() <= bound + 1e-6
    assert offset.max().item() > 0.9  # reaches past 0.5: the step follows std(real)
    assert offset.mean().item() == pytest.approx(bound / 4, abs=0.02)  # E[a] E[u] = 1/4
    # the penalty is (||x_hat|| - 1)^2 at exactly those points
    assert value == pytest.approx((x_hat.norm(dim=1) - 1).pow(2).mean().item(), rel=1e-6)


def test_r1_is_at_the_real_points():
    """Quadratic D: r1 = 1/2 E ||x||^2 over the real batch, whatever the fake batch or seed."""
    d = Quadratic()
    real = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # ||x||^2 = 25, 1
    for fake, seed in ((torch.zeros(2, 2), 0), (torch.full((2, 2), 9.0), 1)):
        assert PENALTIES.get("r1")(d, real, fake, None, gen(seed)).item() == pytest.approx(6.5)


@pytest.mark.parametrize("name", ["wgan-gp", "dragan"])
def test_reproducible_with_the_same_seed_and_not_with_another(name):
    d = Quadratic()
    real, fake = batch(seed=4)
    a = PENALTIES.get(name)(d, real, fake, None, gen(11))
    b = PENALTIES.get(name)(d, real, fake, None, gen(11))
    c = PENALTIES.get(name)(d, real, fake, None, gen(12))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("name", ["wgan-gp", "dragan"])
def test_draws_from_the_given_generator_only(name):
    """The random points come from the run's noise generator (so a resumed run matches), not from
    torch's global RNG."""
    d = Quadratic()
    real, fake = batch(seed=4)
    g = gen(11)
    before = g.get_state()
    torch.manual_seed(0)
    a = PENALTIES.get(name)(d, real, fake, None, g)
    assert not torch.equal(g.get_state(), before)  # it used the generator
    torch.manual_seed(123)  # another global state changes nothing
    b = PENALTIES.get(name)(d, real, fake, None, gen(11))
    assert torch.equal(a, b)


def test_r1_needs_no_randomness():
    d = Quadratic()
    real, fake = batch(seed=4)
    g = gen(0)
    before = g.get_state()
    a = PENALTIES.get("r1")(d, real, fake, None, g)
    assert torch.equal(g.get_state(), before)
    assert torch.equal(a, PENALTIES.get("r1")(d, real, fake, None, gen(99)))


# ----------------------------------------------------------------------------- image tensors

@pytest.mark.parametrize("name", NAMES)
def test_image_tensors_linear_d(name):
    """(B, C, H, W): grad_x D = W, ||W||^2 = 3 * 4 * 4 = 48 for W = ones(3, 4, 4)."""
    d = Linear(torch.ones(3, 4, 4))
    real, fake = batch(shape=(5, 3, 4, 4))
    got = PENALTIES.get(name)(d, real, fake, None, gen()).item()
    expected = 24.0 if name == "r1" else (math.sqrt(48) - 1) ** 2
    assert got == pytest.approx(expected, rel=1e-5)
    d.w.grad = None
    PENALTIES.get(name)(d, real, fake, None, gen()).backward()
    assert d.w.grad.shape == (3, 4, 4) and d.w.grad.abs().min() > 0


def test_image_tensors_interpolate_per_sample():
    """One a per image (shape (B, 1, 1, 1)), not one per pixel: with real = 0 and fake = c * ones,
    x_hat = (1 - a) c * ones: every pixel of an image has the same value, in [0, c]."""
    real = torch.zeros(2, 1, 2, 2)
    fake = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 3.0)])
    x_seen = []

    class Spy(Quadratic):
        def forward(self, x, y=None):
            x_seen.append(x.detach().clone())
            return super().forward(x, y)

    PENALTIES.get("wgan-gp")(Spy(), real, fake, None, gen(2))
    (x_hat,) = x_seen
    assert x_hat.shape == (2, 1, 2, 2)
    for i in range(2):  # every pixel of an image got the same a
        assert torch.all(x_hat[i] == x_hat[i].flatten()[0])
        assert 0 <= x_hat[i].flatten()[0] <= fake[i].flatten()[0]
    # and the two images drew different a: (1 - a_0) * 1 != (1 - a_1) * 3 / 3
    assert x_hat[0].flatten()[0] != x_hat[1].flatten()[0] / 3


class BatchNormD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2),
                                 nn.Linear(8, 1))

    def forward(self, x, y=None):
        return self.net(x).squeeze(1)


@pytest.mark.parametrize("name", NAMES)
def test_batch_norm_running_statistics_are_left_alone(name, monkeypatch):
    """The penalty's forward leaves D's batch-norm running statistics (read in eval mode, by the
    probe of D's features) as they were. Its value and D's gradients are those of a plain
    forward, which moves the statistics: training mode normalises by the batch's own."""
    import copy

    import ganforge.losses.penalties as penalties

    torch.manual_seed(0)
    d = BatchNormD()
    plain = copy.deepcopy(d)
    real, fake = batch(seed=6)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    value = PENALTIES.get(name)(d, real, fake, None, gen(3))
    value.backward()
    assert all(torch.equal(before[k], v) for k, v in d.state_dict().items())
    with monkeypatch.context() as mp:  # the plain forward, on D's own statistics
        mp.setattr(penalties.torch.func, "functional_call", lambda m, buffers, args: m(*args))
        expected = PENALTIES.get(name)(plain, real, fake, None, gen(3))
    expected.backward()
    assert torch.equal(value, expected)
    grads = [(p.grad, q.grad) for p, q in zip(d.parameters(), plain.parameters())]
    assert all(a is b is None or torch.equal(a, b) for a, b in grads)  # last bias: no grad
    assert sum(a is not None for a, _ in grads) >= 4
    assert not torch.equal(plain.net[1].running_mean, before["net.1.running_mean"])
