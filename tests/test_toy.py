"""Toy mixtures (data/toy.py), the settings that go with them (one-line ConfigErrors) and the
minibatch-discrimination layer (models/layers.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.config import load_config
from ganforge.data import is_toy, load_data
from ganforge.data.base import Batches
from ganforge.data.toy import FreshSamples
from ganforge.errors import ConfigError
from ganforge.models import build_models
from ganforge.models.layers import MinibatchDiscrimination
from ganforge.models.mlp import MLPDiscriminator

CPU = torch.device("cpu")


def toy(preset: str, *overrides: str):
    return load_data(load_config(preset, list(overrides)))


# ----------------------------------------------------------------------------- the mixtures

def test_toy_names():
    assert all(is_toy(n) for n in ("mixture-1d", "ring", "grid"))
    assert not is_toy("mnist")


def test_ring_centres_stds_and_weights():
    data = toy("ring-gan")
    assert data.kind == "toy" and data.dim == 2
    c = data.centers.double()
    assert c.shape == (8, 2)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64), atol=1e-6)
    for k in range(8):  # centre k at angle 2 pi k / 8, in order
        angle = 2 * math.pi * k / 8
        assert c[k].tolist() == pytest.approx([2 * math.cos(angle), 2 * math.sin(angle)], abs=1e-6)
    assert len({(round(x, 4), round(y, 4)) for x, y in c.tolist()}) == 8  # distinct
    assert data.stds.tolist() == pytest.approx([0.02] * 8)
    assert data.weights.tolist() == pytest.approx([1 / 8] * 8)


def test_ring_settings():
    data = toy("ring-gan", "data.toy.modes=5", "data.toy.radius=3.0", "data.toy.std=0.1")
    assert data.centers.shape == (5, 2)
    assert data.centers.norm(dim=1).tolist() == pytest.approx([3.0] * 5, abs=1e-6)
    assert data.centers[1].tolist() == pytest.approx(
        [3 * math.cos(2 * math.pi / 5), 3 * math.sin(2 * math.pi / 5)], abs=1e-6)
    assert data.stds.tolist() == pytest.approx([0.1] * 5)


def test_grid_centres_stds_and_weights():
    data = toy("grid-gan")
    assert data.centers.shape == (25, 2)
    values = (-4.0, -2.0, 0.0, 2.0, 4.0)
    assert {tuple(p) for p in data.centers.tolist()} == {(a, b) for a in values for b in values}
    assert data.stds.tolist() == pytest.approx([0.05] * 25)
    assert data.weights.tolist() == pytest.approx([1 / 25] * 25)


def test_mixture_1d_defaults():
    data = toy("mixture1d-gan")
    assert data.dim == 1
    assert data.centers[:, 0].tolist() == [-3.0, 3.0]
    assert data.stds.tolist() == [0.5, 0.5]
    assert data.weights.tolist() == [0.5, 0.5]


def test_mixture_1d_reads_means_stds_weights():
    data = toy("mixture1d-gan", "data.toy.means=[-1,2,5]", "data.toy.stds=[0.1,0.2,0.3]",
               "data.toy.weights=[1,1,2]")
    assert data.centers.shape == (3, 1)
    assert data.centers[:, 0].tolist() == [-1.0, 2.0, 5.0]
    assert data.stds.tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert data.weights.tolist() == pytest.approx([0.25, 0.25, 0.5])  # normalised


def test_a_mixture_1d_gaussian_of_weight_zero_is_no_mode():
    data = toy("mixture1d-gan", "data.toy.means=[-1,2,5]", "data.toy.stds=[0.1,0.2,0.3]",
               "data.toy.weights=[1,0,3]")
    assert data.centers[:, 0].tolist() == [-1.0, 5.0]
    assert data.stds.tolist() == pytest.approx([0.1, 0.3])
    assert data.weights.tolist() == pytest.approx([0.25, 0.75])
    assert data.source.startswith("mixture-1d: 2 Gaussians")


def test_evaluate_scores_the_kl_against_the_data_weights():
    """A G that puts a quarter of its fixed noise on -3 and the rest on +3 draws exactly the
    mixture of weights 1/4 and 3/4 (KL near 0), and unevenly for equal weights (KL near
    1/4 log(1/2) + 3/4 log(3/2) = 0.131)."""
    from ganforge.train.watch import evaluate

    class Quarter(torch.nn.Module):
        z_dim = 1

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z, y=None):
            return torch.where(z < -0.6745, -3.0, 3.0)  # the normal's first quartile

    for weights, kl in (("[1,3]", 0.0), ("[1,1]", 0.131)):
        cfg = load_config("mixture1d-gan", [f"data.toy.weights={weights}", "model.z_dim=1"])
        result = evaluate(Quarter(), load_data(cfg), cfg, n=4000)
        assert (result["modes"], result["hq"]) == (2, 100.0)
        assert result["kl"] == pytest.approx(kl, abs=0.005), weights


def test_mixture_1d_sample_statistics():
    # weights 1/4 and 3/4: mean = -3/4 + 9/4 = 1.5; variance = 0.25 + 6.75 = 7 (sd of the mean
    # over 20,000 samples: 0.019)
    data = toy("mixture1d-gan", "data.toy.weights=[1,3]")
    x = data.sample(20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 1) and x.dtype == torch.float32
    assert x.mean().item() == pytest.approx(1.5, abs=0.1)
    assert x.var().item() == pytest.approx(7.0, abs=0.3)
    right = (x[:, 0] > 0).float().mean().item()
    assert right == pytest.approx(0.75, abs=0.02)
    # within 4 std (2.0) of a centre: all but about 6e-5 of the samples
    near = ((x - data.centers[:, 0]).abs() <= 4 * 0.5).any(1).float().mean().item()
    assert near > 0.999
    # each peak has its own std
    assert x[x[:, 0] > 0].std().item() == pytest.approx(0.5, abs=0.03)


def test_mixture_1d_each_peak_samples_with_its_own_std():
    # peaks at -5 (std 0.5) and +5 (std 1.0): 10 and 5 stds from 0, so the sign tells them apart
    data = toy("mixture1d-gan", "data.toy.means=[-5,5]", "data.toy.stds=[0.5,1.0]")
    x = data.sample(20000, torch.Generator().manual_seed(0))[:, 0]
    left, right = x[x < 0], x[x > 0]
    assert len(left) + len(right) == len(x)
    assert left.mean().item() == pytest.approx(-5.0, abs=0.03)
    assert right.mean().item() == pytest.approx(5.0, abs=0.05)
    assert left.std().item() == pytest.approx(0.5, abs=0.03)
    assert right.std().item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("preset,modes,std", [("ring-gan", 8, 0.02), ("grid-gan", 25, 0.05)])
def test_2d_sample_statistics(preset, modes, std):
    data = toy(preset)
    x = data.sample(10000, torch.Generator().manual_seed(1))
    assert x.shape == (10000, 2)
    dist = torch.cdist(x, data.centers)  # (n, M)
    nearest, which = dist.min(1)
    # P(||noise|| > 4 std) = exp(-8) ~ 3e-4 in 2-D
    assert (nearest <= 4 * std).float().mean().item() > 0.998
    share = torch.bincount(which, minlength=modes).float() / len(x)
    assert share.tolist() == pytest.approx([1 / modes] * modes, abs=0.025)
    assert x.mean(0).tolist() == pytest.approx([0.0, 0.0], abs=0.1)
    # per-axis spread around the nearest centre is the mode std
    offsets = x - data.centers[which]
    assert offsets.std(0).tolist() == pytest.approx([std, std], rel=0.05)


def test_sample_is_seeded():
    data = toy("ring-gan")
    a = data.sample(100, torch.Generator().manual_seed(3))
    b = data.sample(100, torch.Generator().manual_seed(3))
    c = data.sample(100, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_density_1d_integrates_to_one_and_by_hand():
    data = toy("mixture1d-gan")
    xs = torch.linspace(-10, 10, 20001, dtype=torch.float32)
    p = data.density(xs[:, None])
    assert p.shape == (20001,) and (p >= 0).all()
    assert torch.trapezoid(p, xs).item() == pytest.approx(1.0, abs=1e-3)
    # at x = 3: 1/2 N(3; 3, 0.25) + 1/2 N(3; -3, 0.25) = 1/2 / (0.5 sqrt(2 pi)) + ~0
    assert data.density(torch.tensor([[3.0]])).item() == pytest.approx(
        0.5 / (0.5 * math.sqrt(2 * math.pi)), rel=1e-5)
    assert data.density(torch.tensor([[0.0]])).item() < 1e-6  # between the peaks


def test_density_1d_uneven_mixture_integrates_to_one():
    data = toy("mixture1d-gan", "data.toy.means=[-2,0,4]", "data.toy.stds=[0.3,1.0,0.7]",
               "data.toy.weights=[2,1,1]")
    xs = torch.linspace(-12, 12, 24001)
    assert torch.trapezoid(data.density(xs[:, None]), xs).item() == pytest.approx(1.0, abs=1e-3)


def test_density_2d_integrates_to_one():
    # a wider ring so that a 0.01 grid resolves it: std 0.2
    data = toy("ring-gan", "data.toy.std=0.2")
    axis = torch.linspace(-3.5, 3.5, 701)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    p = data.density(torch.stack([gx.flatten(), gy.flatten()], 1)).reshape(gx.shape)
    total = torch.trapezoid(torch.trapezoid(p, axis, dim=1), axis).item()
    assert total == pytest.approx(1.0, abs=2e-3)
    # at a centre: 1/8 / (2 pi 0.04), the other modes are far
    centre = data.centers[:1]
    assert data.density(centre).item() == pytest.approx(1 / 8 / (2 * math.pi * 0.04), rel=1e-4)


# ----------------------------------------------------------------------------- batches

def test_fresh_samples_every_step_and_state_round_trip():
    data = toy("ring-gan")
    batches = data.batches(32, CPU, seed=5)
    assert isinstance(batches, FreshSamples)
    first, y = batches.next()
    assert first.shape == (32, 2) and y.shape == (32,) and (y == 0).all()
    assert not torch.equal(first, batches.next()[0])  # new points every step
    state = {k: v.clone() for k, v in batches.state_dict().items()}
    after = [batches.next()[0] for _ in range(3)]

    other = data.batches(32, CPU, seed=99)
    assert not torch.equal(other.next()[0], after[0])
    other.load_state_dict(state)
    for expected in after:
        assert torch.equal(other.next()[0], expected)
    # the same seed replays from the start
    assert torch.equal(data.batches(32, CPU, seed=5).next()[0], first)


def test_fixed_size_is_a_fixed_set():
    data = toy("ring-gan", "data.toy.fixed_size=64")
    batches = data.batches(16, CPU, seed=0)
    assert isinstance(batches, Batches)

    def epoch():
        return torch.cat([batches.next()[0] for _ in range(4)])

    def as_set(x):
        return {tuple(p) for p in x.tolist()}

    e1, e2, e3 = epoch(), epoch(), epoch()
    assert len(as_set(e1)) == 64
    assert as_set(e1) == as_set(e2) == as_set(e3)  # the same 64 points every epoch
    assert not torch.equal(e1, e2)  # in a new order
    # the set is a draw from the ring, fixed by the seed
    assert torch.cdist(e1, data.centers).min(1).values.max().item() < 4 * 0.02 * 1.5
    again = data.batches(16, CPU, seed=0)
    assert as_set(torch.cat([again.next()[0] for _ in range(4)])) == as_set(e1)
    other = data.batches(16, CPU, seed=1)
    assert as_set(torch.cat([other.next()[0] for _ in range(4)])) != as_set(e1)


def test_fixed_size_smaller_than_a_batch_is_a_data_error():
    from ganforge.errors import DataError
    data = toy("ring-gan", "data.toy.fixed_size=8")
    with pytest.raises(DataError, match=r"has 8 points, fewer than train.batch_size=16; lower "
                       r"the batch size or raise data.toy.fixed_size"):
        data.batches(16, CPU, seed=0)


def test_fixed_size_source_says_so():
    assert "fixed set of 64" in toy("ring-gan", "data.toy.fixed_size=64").source


def test_data_limit_on_a_toy_mixture_is_said_to_do_nothing():
    assert "data.limit" not in toy("ring-gan").source
    assert toy("ring-gan", "data.limit=100").source.endswith(
        "; data.limit does not apply to a toy mixture (data.toy.fixed_size does)")
    assert "fresh samples" in toy("ring-gan").source


# ----------------------------------------------------------------------------- bad settings

BAD = {
    # name: (preset, overrides, words the one-line message must contain)
    "toy-mlp on mnist": ("gan-mnist", ["model.arch=toy-mlp"], ["toy-mlp", "mnist"]),
    "mlp on ring": ("ring-gan", ["model.arch=mlp"], ["mlp", "ring", "toy-mlp"]),
    "dcgan on ring": ("ring-gan", ["model.arch=dcgan"], ["dcgan", "ring", "toy-mlp"]),
    "mlp on grid": ("grid-gan", ["model.arch=mlp"], ["grid", "toy-mlp"]),
    "means vs stds": ("mixture1d-gan", ["data.toy.means=[-3,0,3]"],
                      ["data.toy.means", "data.toy.stds", "3, 2, 2"]),
    "weights length": ("mixture1d-gan", ["data.toy.weights=[1]"], ["data.toy.weights"]),
    "negative std": ("mixture1d-gan", ["data.toy.stds=[0.5,-1]"], ["data.toy.stds"]),
    "zero std 1-d": ("mixture1d-gan", ["data.toy.stds=[0.5,0]"], ["data.toy.stds", "> 0"]),
    "ring std": ("ring-gan", ["data.toy.std=0"], ["data.toy.std"]),
    # NaN and infinity passed the range checks: the points came out NaN or inf, or
    # torch.multinomial raised a RuntimeError, after the run folder was written
    "nan std": ("ring-gan", ["data.toy.std=.nan"], ["data.toy.std=nan", "finite"]),
    "inf std": ("grid-gan", ["data.toy.std=.inf"], ["data.toy.std=inf", "finite"]),
    "nan radius": ("ring-gan", ["data.toy.radius=.nan"], ["data.toy.radius", "finite"]),
    "nan mean": ("mixture1d-gan", ["data.toy.means=[0,.nan]"], ["data.toy.means", "finite"]),
    "inf std 1-d": ("mixture1d-gan", ["data.toy.stds=[.inf,1]"], ["data.toy.stds", "finite"]),
    "nan weight": ("mixture1d-gan", ["data.toy.weights=[.nan,1]"],
                   ["data.toy.weights", "finite"]),
    "fixed size": ("ring-gan", ["data.toy.fixed_size=0"], ["data.toy.fixed_size"]),
    "unroll rmsprop": ("ring-unrolled", ["optim.name=rmsprop"],
                       ["train.unroll_steps", "adam"]),
    "unroll penalty": ("ring-unrolled", ["loss.penalty=dragan"],
                       ["loss.penalty", "train.unroll_steps"]),
    "unroll feature matching": ("ring-gan", ["train.unroll_steps=2",
                                             "loss.generator=feature-matching"],
                                ["feature-matching", "train.unroll_steps"]),
    "negative unroll": ("ring-gan", ["train.unroll_steps=-1"], ["train.unroll_steps"]),
    "minibatch dcgan": ("demo", ["model.minibatch_kernels=4"],
                        ["model.minibatch_kernels", "dcgan"]),
    "components dcgan": ("demo", ["model.g_components=4"], ["model.g_components", "dcgan"]),
    "components": ("ring-gan", ["model.g_components=0"], ["model.g_components"]),
    "optimiser": ("ring-gan", ["optim.name=foo"], ["optim.name", "foo", "adam", "rmsprop"]),
    "penalty": ("ring-gan", ["loss.penalty=foo"], ["loss.penalty", "foo", "wgan-gp", "dragan",
                                                   "r1"]),
    "clip": ("ring-gan", ["optim.clip_d=0"], ["optim.clip_d"]),
    "d loss": ("ring-gan", ["loss.discriminator=foo"], ["loss.discriminator", "wasserstein",
                                                        "hinge", "least-squares"]),
    "eval every": ("ring-gan", ["train.eval_every=-1"], ["train.eval_every"]),
    "instance noise": ("ring-gan", ["loss.instance_noise=-0.1"], ["loss.instance_noise", ">= 0"]),
    "instance noise steps": ("ring-gan", ["loss.instance_noise_steps=-1"],
                             ["loss.instance_noise_steps", ">= 0"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_toy_settings_are_one_line_config_errors(case):
    preset, overrides, words = BAD[case]
    with pytest.raises(ConfigError) as info:
        load_config(preset, overrides)
    msg = str(info.value)
    assert "\n" not in msg and msg
    for w in words:
        assert w in msg, (w, msg)


def test_good_toy_settings_load():
    """The combinations the errors above rule out are fine one at a time."""
    load_config("ring-gan", ["optim.name=rmsprop", "optim.clip_d=0.01",
                             "loss.discriminator=wasserstein", "loss.generator=wasserstein"])
    load_config("ring-gan", ["loss.penalty=r1", "loss.generator=feature-matching"])
    load_config("ring-gan", ["train.unroll_steps=3", "model.minibatch_kernels=4"])
    load_config("gan-mnist", ["model.minibatch_kernels=4"])
    load_config("gan-mnist", ["model.g_components=3"])
    load_config("mixture1d-gan", ["data.toy.means=[0]", "data.toy.stds=[1]",
                                  "data.toy.weights=[1]"])


# ----------------------------------------------------------------------------- toy models

@pytest.mark.parametrize("preset,dim", [("mixture1d-gan", 1), ("ring-gan", 2), ("grid-gan", 2)])
def test_toy_mlp_shapes(preset, dim):
    cfg = load_config(preset, ["model.z_dim=4", "model.g_hidden=[8]", "model.d_hidden=[8,6]"])
    g, d = build_models(cfg)
    x = g(torch.randn(5, 4))
    assert x.shape == (5, dim)
    assert d(x).shape == (5,)
    # linear output, no tanh: G can reach the grid corners at +-4
    assert not any(isinstance(m, torch.nn.Tanh) for m in g.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in [*g.modules(), *d.modules()])


def test_toy_mlp_with_minibatch_discrimination():
    cfg = load_config("ring-gan", ["model.d_hidden=[8,6]", "model.minibatch_kernels=3",
                                   "model.minibatch_kernel_dim=4"])
    _, d = build_models(cfg)
    layers = [m for m in d.modules() if isinstance(m, MinibatchDiscrimination)]
    assert len(layers) == 1 and layers[0].T.shape == (6, 12)
    feats = d.features(torch.randn(7, 2))
    assert feats[-2].shape == (7, 6 + 3) and feats[-1].shape == (7, 1)
    assert d(torch.randn(7, 2)).shape == (7,)


def test_heat_map_frame_of_a_minibatch_discriminator(tmp_path):
    """The 2-D frame judges 25,600 grid points: in chunks, or a minibatch layer (N x N x B)
    would ask for tens of GB. Chunking leaves a per-sample D's map as it was (to rounding)."""
    from ganforge.train.watch import d_output, save_frame

    cfg = load_config("ring-gan", ["model.minibatch_kernels=5"])
    g, d = build_models(cfg)
    save_frame(g, d, load_data(cfg), cfg, tmp_path / "frame.png", 1)
    assert (tmp_path / "frame.png").stat().st_size > 0
    _, plain = build_models(load_config("ring-gan"))
    pts = torch.randn(3000, 2)
    assert np.allclose(d_output(plain, pts, chunk=7), d_output(plain, pts), rtol=0, atol=1e-6)


@pytest.mark.parametrize("loss,probability", [("cross-entropy", True),
                                               ("least-squares", True), ("hinge", False),
                                               ("wasserstein", False)])
def test_frames_draw_d_on_the_scale_its_loss_gives_it(monkeypatch, tmp_path, loss, probability):
    """sigmoid(D) is a probability only for cross-entropy; a WGAN critic's raw values sit far
    from 0, where sigmoid is flat, so its heat map was one colour. Frames draw the raw output
    for the other losses, a critic's over the range it takes (1-D: scaled to 0..1)."""
    import ganforge.train.watch as watch

    seen = {}
    for name in ("frame_1d", "frame_2d"):
        monkeypatch.setattr("ganforge.viz.toy." + name,
                            lambda *a, **k: seen.update(args=a, kwargs=k))
    for preset in ("ring-gan", "mixture1d-gan"):
        cfg = load_config(preset, [f"loss.discriminator={loss}"])
        g, d = build_models(cfg)
        with torch.no_grad():  # a critic far from 0, as a trained WGAN's is
            d.blocks[-1].bias.fill_(-40.0)
        watch.save_frame(g, d, load_data(cfg), cfg, tmp_path / "f.png", 1)
        values = seen["args"][5] if preset == "ring-gan" else seen["args"][4]
        xs = torch.from_numpy(np.stack([seen["args"][3].ravel(), seen["args"][4].ravel()], 1)
                              if preset == "ring-gan" else seen["args"][1][:, None]).float()
        raw = watch.d_output(d, xs, sigmoid=False).reshape(values.shape)
        if preset == "ring-gan":
            assert seen["kwargs"]["d_range"] == ((0.0, 1.0) if probability else None)
            expect = torch.sigmoid(torch.from_numpy(raw)).numpy() if loss == "cross-entropy" \
                else raw
            assert np.allclose(values, expect, atol=1e-6)
        else:
            assert seen["kwargs"]["d_star"] is probability
            if not probability:  # the raw critic, scaled to 0..1 over the window
                assert values.min() == 0 and values.max() == pytest.approx(1.0)
                assert np.allclose(values, (raw - raw.min()) / (raw.max() - raw.min()),
                                   atol=1e-5)
        assert ("critic" in seen["kwargs"]["d_label"]) is not probability


@pytest.mark.parametrize("z_dist", ["normal", "uniform"])
def test_generator_components_are_equally_likely_and_fixed_by_z(z_dist):
    from ganforge.sampling import sample_z

    cfg = load_config("ring-gan", ["model.z_dim=3", "model.g_hidden=[8]",
                                   "model.g_components=5", f"model.z_dist={z_dist}"])
    g, _ = build_models(cfg)
    assert g.net[0].in_features == 3 + 5  # z beside the component's one-hot
    z = sample_z(50_000, 3, z_dist, torch.Generator().manual_seed(0))
    k = g.component(z)
    share = torch.bincount(k, minlength=5) / len(k)
    assert k.min() == 0 and k.max() == 4
    assert torch.allclose(share, torch.full((5,), 0.2), atol=0.01), share
    # the component depends on z's first coordinate only, increasing with it
    order = z[:, 0].argsort()
    assert (k[order].diff() >= 0).all()
    # the one-hot reaches G: the same z with another component gives another point
    one_hot = torch.nn.functional.one_hot
    x = g(z[:4])
    assert torch.allclose(x, g.net(torch.cat([z[:4], one_hot(k[:4], 5).float()], 1)))
    other = torch.cat([z[:4], one_hot((k[:4] + 1) % 5, 5).float()], 1)
    assert not torch.allclose(x, g.net(other))


def test_one_component_is_the_plain_generator():
    cfg = load_config("ring-gan", ["model.z_dim=3", "model.g_hidden=[8]"])
    g, _ = build_models(cfg)
    assert g.components == 1 and g.net[0].in_features == 3


# ----------------------------------------------------------------------------- minibatch layer

def test_minibatch_output_shape_and_passthrough():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(in_features=6, kernels=4, kernel_dim=3)
    h = torch.randn(10, 6)
    out = layer(h)
    assert out.shape == (10, 6 + 4)
    assert torch.equal(out[:, :6], h)  # [f(x), o(x)]
    o = out[:, 6:]
    assert ((o >= 0) & (o <= 9)).all()  # a sum of N - 1 terms in (0, 1]


@pytest.mark.parametrize("n", [1, 2, 7])
def test_minibatch_identical_rows_give_n_minus_one(n):
    torch.manual_seed(1)
    layer = MinibatchDiscrimination(5, kernels=3, kernel_dim=2)
    h = torch.randn(1, 5).repeat(n, 1)
    o = layer(h)[:, 5:]
    assert o.shape == (n, 3)
    assert torch.equal(o, torch.full((n, 3), float(n - 1)))


def test_minibatch_by_hand():
    """One kernel of dimension 1 and T = [[1]]: M = h, c(i, j) = exp(-|h_i - h_j|).
    h = 0, 1, 3: o_0 = e^-1 + e^-3, o_1 = e^-1 + e^-2, o_2 = e^-3 + e^-2."""
    layer = MinibatchDiscrimination(1, kernels=1, kernel_dim=1)
    with torch.no_grad():
        layer.T.fill_(1.0)
    o = layer(torch.tensor([[0.0], [1.0], [3.0]]))[:, 1]
    e = math.exp
    assert o.tolist() == pytest.approx([e(-1) + e(-3), e(-1) + e(-2), e(-3) + e(-2)], rel=1e-6)


def test_minibatch_far_apart_rows_give_zero():
    layer = MinibatchDiscrimination(1, kernels=2, kernel_dim=1)
    with torch.no_grad():
        layer.T.fill_(1.0)
    o = layer(torch.tensor([[0.0], [100.0], [-100.0]]))[:, 1:]
    assert o.abs().max().item() < 1e-30


def test_minibatch_is_permutation_equivariant():
    torch.manual_seed(2)
    layer = MinibatchDiscrimination(6, kernels=4, kernel_dim=3)
    h = torch.randn(9, 6)
    perm = torch.randperm(9)
    assert torch.allclose(layer(h[perm]), layer(h)[perm], atol=1e-6)
    # and o(x_i) depends on the rest of the batch
    assert not torch.allclose(layer(h[:5])[:, 6:], layer(h)[:5, 6:])


def test_minibatch_gradient_reaches_t():
    torch.manual_seed(3)
    layer = MinibatchDiscrimination(4, kernels=2, kernel_dim=3)
    layer(torch.randn(6, 4)).sum().backward()
    assert layer.T.grad is not None and layer.T.grad.abs().sum() > 0


def test_d_spots_a_collapsed_batch():
    """With minibatch discrimination D's logits for the same point depend on its batch: a batch of
    copies of one point differs from that point inside a varied batch. Without it they match."""
    torch.manual_seed(4)
    x = torch.randn(8, 2)
    collapsed = x[:1].repeat(8, 1)
    with_mbd = MLPDiscriminator((2,), [8], toy=True, minibatch_kernels=4)
    without = MLPDiscriminator((2,), [8], toy=True)
    assert not torch.allclose(with_mbd(collapsed)[0], with_mbd(x)[0])
    assert torch.allclose(without(collapsed)[0], without(x)[0])
    assert np.allclose(with_mbd(collapsed).detach().numpy(), with_mbd(collapsed)[0].item())


def test_d_output_gives_back_the_mode_it_found():
    from torch import nn

    from ganforge.train.watch import d_output
    d = nn.Sequential(nn.Linear(2, 1))
    for training in (True, False):
        d.train(training)
        d_output(d, torch.zeros(3, 2))
        assert d.training is training


def test_a_negative_mixture_weight_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data.toy.weights >= 0"):
        load_config("mixture1d-gan", ["data.toy.weights=[-0.5,1.5]"])
