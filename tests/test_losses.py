"""Every registered loss and the discriminator statistics against values worked out by hand
with math.log / math.exp on explicit logits (D(x) = sigmoid(logit))."""
import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.losses import D_LOSSES, G_LOSSES, discriminator_stats

REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


# Hand-computed expectations, written from the definitions rather than the code's softplus form.
def d_cross_entropy(real, fake):  # -1/2 E log D(x) - 1/2 E log(1 - D(G(z)))
    return (-0.5 * mean(math.log(sig(r)) for r in real)
            - 0.5 * mean(math.log(1 - sig(f)) for f in fake))


HAND_G = {
    # 1/2 E log(1 - D(G(z)))
    "minimax": lambda fake: 0.5 * mean(math.log(1 - sig(f)) for f in fake),
    # -1/2 E log D(G(z))
    "non-saturating": lambda fake: -0.5 * mean(math.log(sig(f)) for f in fake),
    # -1/2 E D/(1-D)  (= -1/2 E exp(sigma^-1(D)))
    "maximum-likelihood": lambda fake: -0.5 * mean(sig(f) / (1 - sig(f)) for f in fake),
}
HAND_D = {"cross-entropy": d_cross_entropy}


def t(xs):
    return torch.tensor(xs, dtype=torch.float32)


def test_the_seed_losses_are_registered():
    assert set(HAND_G) <= set(G_LOSSES.names())
    assert set(HAND_D) <= set(D_LOSSES.names())


def test_registering_checks_the_name_before_anything_is_stored():
    from ganforge.losses.penalties import PENALTIES
    from ganforge.registry import Registry

    before = G_LOSSES.names()
    for name in (3, "", " padded"):
        with pytest.raises(TypeError, match="registered under a name, a non-empty string"):
            G_LOSSES.register(name)
    with pytest.raises(TypeError, match="not g_sum"):  # @register with no parentheses

        @G_LOSSES.register
        def g_sum(fake_logits):
            return fake_logits.sum()
    with pytest.raises(ValueError, match="'none' cannot name a gradient penalty"):
        PENALTIES.register("none")
    with pytest.raises(ValueError, match="registered twice"):
        G_LOSSES.register("non-saturating")(lambda fake_logits: fake_logits.sum())
    assert G_LOSSES.names() == before
    local = Registry("thing")
    assert local.register("a")(len) is len and local.get("a") is len


def test_d_cross_entropy_number():
    # once more with literal numbers: softplus(-2), softplus(1), softplus(.5), softplus(-3)
    expected = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2 \
        + 0.5 * (math.log(1 + math.exp(0.5)) + math.log(1 + math.exp(-3))) / 2
    assert d_cross_entropy(REAL, FAKE) == pytest.approx(expected, rel=1e-12)
    got = D_LOSSES.get("cross-entropy")(t(REAL), t(FAKE))
    assert got.shape == ()
    assert got.item() == pytest.approx(0.6157135, abs=1e-6)


@pytest.mark.parametrize("name", sorted(HAND_D))
@pytest.mark.parametrize("real,fake", [(REAL, FAKE), ([3.0, 1.0, 0.2], [-2.0, 0.5, 4.0])])
def test_d_losses_by_hand(name, real, fake):
    got = D_LOSSES.get(name)(t(real), t(fake))
    assert got.item() == pytest.approx(HAND_D[name](real, fake), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", sorted(HAND_G))
@pytest.mark.parametrize("fake", [FAKE, [-2.0, 0.5, 4.0], [0.0]])
def test_g_losses_by_hand(name, fake):
    got = G_LOSSES.get(name)(t(fake))
    assert got.shape == ()
    assert got.item() == pytest.approx(HAND_G[name](fake), rel=1e-5, abs=1e-6)


def test_g_loss_literal_values():
    # literal numbers for FAKE = [0.5, -3.0], independent of the helpers above
    assert G_LOSSES.get("minimax")(t(FAKE)).item() == pytest.approx(-0.2556661, abs=1e-6)
    assert G_LOSSES.get("non-saturating")(t(FAKE)).item() == pytest.approx(0.8806661, abs=1e-6)
    assert G_LOSSES.get("maximum-likelihood")(t(FAKE)).item() == pytest.approx(-0.4246271, abs=1e-6)


def test_maximum_likelihood_stays_finite_when_d_is_fooled_completely():
    """exp(logit) overflows float32 past about 88: the cost caps the logit at 50, so the loss,
    its gradient and G's next Adam step stay finite, and samples past the cap get no gradient."""
    from ganforge.losses.adversarial import ML_LOGIT_MAX

    ml = G_LOSSES.get("maximum-likelihood")
    x = t([100.0, 0.0, ML_LOGIT_MAX - 1]).requires_grad_(True)
    loss = ml(x)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(x.grad).all()
    assert x.grad[0] == 0 and x.grad[1] == pytest.approx(-1 / 6)
    assert x.grad[2] == pytest.approx(-math.exp(ML_LOGIT_MAX - 1) / 6, rel=1e-5)
    assert math.isfinite(ml(torch.full((4096,), 85.0)).item())
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.Adam([w], lr=2e-4)
    ml(w * t([100.0, 0.0])).backward()
    opt.step()
    assert torch.isfinite(w).all()


def test_gradients_by_hand():
    """Per logit l (n of them): minimax dJ/dl = -sigma(l)/(2n), which vanishes when D rejects the
    sample (l << 0); non-saturating dJ/dl = -(1 - sigma(l))/(2n), which does not."""
    n = len(FAKE)
    for name, hand in (("minimax", lambda l: -sig(l) / (2 * n)),
                       ("non-saturating", lambda l: -(1 - sig(l)) / (2 * n)),
                       ("maximum-likelihood", lambda l: -math.exp(l) / (2 * n))):
        x = t(FAKE).requires_grad_(True)
        G_LOSSES.get(name)(x).backward()
        for g, l in zip(x.grad.tolist(), FAKE):
            assert g == pytest.approx(hand(l), rel=1e-5), name
    x = t([-10.0]).requires_grad_(True)
    G_LOSSES.get("minimax")(x).backward()
    assert abs(x.grad.item()) < 1e-4  # saturated
    x = t([-10.0]).requires_grad_(True)
    G_LOSSES.get("non-saturating")(x).backward()
    assert x.grad.item() == pytest.approx(-0.5, abs=1e-4)


def test_losses_stable_for_large_logits():
    big = t([80.0, -80.0])
    assert torch.isfinite(D_LOSSES.get("cross-entropy")(big, big))
    assert torch.isfinite(G_LOSSES.get("non-saturating")(big))
    assert torch.isfinite(G_LOSSES.get("minimax")(big))
    # D perfectly right: real logit +80, fake logit -80 -> loss ~ 0
    perfect = D_LOSSES.get("cross-entropy")(t([80.0]), t([-80.0]))
    assert perfect.item() == pytest.approx(0, abs=1e-12)


def test_discriminator_stats_by_hand():
    s = discriminator_stats(t(REAL), t(FAKE))
    assert set(s) == {"d_acc", "d_real", "d_fake", "js_estimate"}
    # correct: real 2.0 (> 0) yes, real -1.0 no, fake 0.5 (< 0) no, fake -3.0 yes -> 2/4
    assert s["d_acc"].item() == pytest.approx(0.5)
    assert s["d_real"].item() == pytest.approx((sig(2.0) + sig(-1.0)) / 2, rel=1e-6)
    assert s["d_fake"].item() == pytest.approx((sig(0.5) + sig(-3.0)) / 2, rel=1e-6)
    L = mean(math.log(sig(r)) for r in REAL) + mean(math.log(1 - sig(f)) for f in FAKE)
    assert s["js_estimate"].item() == pytest.approx(0.5 * L + math.log(2), rel=1e-5)
    assert s["js_estimate"].item() == pytest.approx(0.0774337, abs=1e-6)  # literal value


def test_discriminator_stats_on_the_scale_of_each_loss():
    """Only cross-entropy makes D's output a logit: the other losses log raw means, least
    squares and hinge their own threshold, a Wasserstein critic its W1 estimate, no JS."""
    real, fake = [2.0, 0.4, -1.0], [0.7, -3.0]
    for loss, cut, estimate in (("least-squares", 0.5, "delta_estimate"),
                                ("hinge", 0.0, "tv_estimate")):
        s = discriminator_stats(t(real), t(fake), loss)
        assert set(s) == {"d_acc", "d_real", "d_fake", estimate}
        right = sum(r > cut for r in real) + sum(f < cut for f in fake)
        assert s["d_acc"].item() == pytest.approx(right / 5)
        assert s["d_real"].item() == pytest.approx(mean(real), rel=1e-6)
        assert s["d_fake"].item() == pytest.approx(mean(fake), rel=1e-6)
    assert discriminator_stats(t(real), t(fake), "least-squares")["d_acc"].item() == \
        pytest.approx(2 / 5)  # 2.0 real; -3.0 fake (0.4 and 0.7 are on the wrong side of 1/2)
    # hinge: real terms 0, 0.6, 2; fake terms 1.7, 0 -> L = 2.6/3 + 1.7/2 ; least squares: real
    # terms 1, 0.36, 4, fake terms 0.49, 9 -> L = 1/2 (5.36/3 + 9.49/2)
    assert discriminator_stats(t(real), t(fake), "hinge")["tv_estimate"].item() == \
        pytest.approx(1 - (2.6 / 3 + 1.7 / 2) / 2, rel=1e-5)
    assert discriminator_stats(t(real), t(fake), "least-squares")["delta_estimate"].item() == \
        pytest.approx(2 - 4 * (5.36 / 3 + 9.49 / 2), rel=1e-6)
    s = discriminator_stats(t(real), t(fake), "wasserstein")
    assert set(s) == {"d_real", "d_fake", "w_estimate"}
    assert s["w_estimate"].item() == pytest.approx(mean(real) - mean(fake), rel=1e-6)
    assert s["w_estimate"].item() == pytest.approx(1.6166667, abs=1e-6)  # literal value
    assert discriminator_stats(t(real), t(fake), "cross-entropy").keys() == \
        discriminator_stats(t(real), t(fake)).keys()


def test_each_distance_estimate_is_exact_for_the_best_d():
    """p = (3/4, 1/4) and q = (1/4, 3/4) on two points a, b, drawn exactly: 3 real samples at a
    and 1 at b, 1 fake at a and 3 at b. The best D of each loss turns its estimate into the
    distance itself: JS with logit log(p/q), total variation 1/2 with sign(p - q) (hinge),
    the triangular discrimination (1/2)^2 / 1 + (1/2)^2 / 1 = 1/2 with p / (p + q) (least
    squares), and a constant D (no better than chance) gives 0. Any other D gives less."""
    def batches(at_a, at_b):
        return t([at_a] * 3 + [at_b]), t([at_a] + [at_b] * 3)

    js = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # KL(p || m) = KL(q || m), m uniform
    for loss, name, best, constant, distance in (
            ("cross-entropy", "js_estimate", (math.log(3), -math.log(3)), 0.0, js),
            ("hinge", "tv_estimate", (1.0, -1.0), 0.0, 0.5),
            ("least-squares", "delta_estimate", (0.75, 0.25), 0.5, 0.5)):
        estimate = discriminator_stats(*batches(*best), loss)[name].item()
        assert estimate == pytest.approx(distance, abs=1e-6), loss
        assert discriminator_stats(*batches(constant, constant), loss)[name].item() == \
            pytest.approx(0.0, abs=1e-6)
        for a, b in ((best[0] * 0.8, best[1] * 0.8), (best[0] + 0.3, best[1] + 0.3),
                     (best[0] * 1.5, best[1] * 1.5)):
            assert discriminator_stats(*batches(a, b), loss)[name].item() < estimate, (loss, a)


def test_discriminator_stats_other_logits():
    real, fake = [3.0, 1.0, 0.2, -0.1], [-2.0, 0.5, -4.0]
    s = discriminator_stats(t(real), t(fake))
    assert s["d_acc"].item() == pytest.approx(5 / 7)  # 3 of 4 real, 2 of 3 fake
    assert s["d_real"].item() == pytest.approx(mean(sig(r) for r in real), rel=1e-6)
    assert s["d_fake"].item() == pytest.approx(mean(sig(f) for f in fake), rel=1e-6)
    L = mean(math.log(sig(r)) for r in real) + mean(math.log(1 - sig(f)) for f in fake)
    assert s["js_estimate"].item() == pytest.approx(0.5 * L + math.log(2), rel=1e-5)
    # a perfect discriminator gives js_estimate -> log 2 and accuracy 1
    s = discriminator_stats(t([30.0]), t([-30.0]))
    assert s["d_acc"].item() == 1.0
    assert s["js_estimate"].item() == pytest.approx(math.log(2), abs=1e-6)


def test_discriminator_stats_are_detached():
    r, f = t(REAL).requires_grad_(True), t(FAKE).requires_grad_(True)
    assert not any(v.requires_grad for v in discriminator_stats(r, f).values())


def test_unknown_loss_name_is_a_config_error():
    with pytest.raises(ConfigError, match="minimax"):
        G_LOSSES.get("no-such-loss")


def test_maximum_likelihood_caps_the_logit_at_fifty():
    """Past ML_LOGIT_MAX = 50 the cost is -1/2 exp(50) for that sample (finite in float32) and
    the sample gets no gradient: logits (60, 0) give -1/4 (e^50 + 1); a cap of 80 would give
    -1/4 (e^60 + 1) and a gradient at 60."""
    x = t([60.0, 0.0]).requires_grad_(True)
    loss = G_LOSSES.get("maximum-likelihood")(x)
    assert loss.item() == pytest.approx(-0.25 * (math.exp(50.0) + 1.0), rel=1e-5)
    loss.backward()
    assert x.grad.tolist() == [0.0, pytest.approx(-0.25)]


@pytest.mark.parametrize("loss,cut", [("cross-entropy", 0.0), ("hinge", 0.0),
                                      ("least-squares", 0.5)])
def test_d_acc_counts_an_output_on_the_threshold_as_wrong(loss, cut):
    """D is right on a real sample above its threshold and a fake one below it: an output
    exactly on the threshold is neither, for real and fake samples alike."""
    on = discriminator_stats(t([cut, cut]), t([cut, cut]), loss)
    assert on["d_acc"].item() == 0.0
    # one real above, one fake below, the other two on the threshold: 2 of 4
    s = discriminator_stats(t([cut, cut + 1.0]), t([cut, cut - 1.0]), loss)
    assert s["d_acc"].item() == pytest.approx(0.5)


def test_discriminator_stats_are_float32_for_low_precision_logits():
    """bfloat16 logits (as autocast gives) are read as float32 before any mean: the statistics
    equal those of the same values in float32, not a bfloat16 sum's rounding of them."""
    real = torch.linspace(-3.0, 3.0, 1001).bfloat16()
    fake = torch.linspace(-4.0, 1.0, 999).bfloat16()
    for loss in ("cross-entropy", "hinge", "least-squares", "wasserstein"):
        low = discriminator_stats(real, fake, loss)
        full = discriminator_stats(real.float(), fake.float(), loss)
        assert low.keys() == full.keys()
        for key, value in low.items():
            assert value.dtype == torch.float32, (loss, key)
            assert value.item() == pytest.approx(full[key].item(), rel=1e-6, abs=1e-7), (loss, key)
