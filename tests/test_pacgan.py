"""PacGAN packing (``model.pack``): how a packed D cuts a batch, what the families build, the
penalties' per-pack norm, the one-line config errors, and the commands that need a D of single
samples. Training with packs (plain, DRAGAN, unrolled; exact resume) is in test_toy_cli.py."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.config import load_config
from ganforge.errors import ConfigError
from ganforge.losses import PENALTIES
from ganforge.models import build_models
from ganforge.models.layers import Packed
from ganforge.train.watch import d_output
from helpers import cli, one_error_line


class FirstRow(nn.Module):
    """D(x) = the first feature of each (packed) sample, to see which samples were packed."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # tells d_output the device

    def features(self, x, y=None):
        return [x.flatten(1)]

    def forward(self, x, y=None):
        return x.flatten(1)[:, 0]


def test_packs_are_consecutive_samples_side_by_side():
    x = torch.arange(24.0).view(6, 2, 1, 2)  # 6 images of 2 channels
    packed = Packed(FirstRow(), 3)
    assert packed.packed(x).shape == (2, 6, 1, 2)
    assert torch.equal(packed.packed(x)[1], torch.cat([x[3], x[4], x[5]]))
    assert torch.equal(packed(x), torch.tensor([0.0, 12.0]))  # one logit a pack
    assert torch.equal(packed.features(x)[0][0], x[:3].flatten())
    with pytest.raises(ValueError, match="packs of 4"):
        Packed(FirstRow(), 4)(x)


def test_families_build_d_for_m_times_the_input():
    _, d = build_models(load_config("ring-pacgan"))
    assert isinstance(d, Packed) and d.pack == 4
    assert d.d.blocks[0][0].in_features == 4 * 2
    assert d(torch.randn(12, 2)).shape == (3,)

    _, d = build_models(load_config("dcgan-stacked-mnist", ["model.pack=2"]))
    assert d.d.blocks[0][0].in_channels == 2 * 3
    assert d(torch.randn(4, 3, 28, 28)).shape == (2,)
    assert d.features(torch.randn(4, 3, 28, 28))[0].shape[0] == 2

    _, d = build_models(load_config("ring-gan", ["model.pack=1"]))
    assert not isinstance(d, Packed)  # pack 1 is the plain D, checkpoints unchanged


@pytest.mark.parametrize("name", ["wgan-gp", "dragan", "r1"])
def test_penalty_norm_is_taken_over_the_whole_pack(name):
    # A linear D on packs of two 2-D points, w = (3, 4, 0, 0): the gradient of D with respect to
    # a pack is w, norm 5, though each point's own part of it has norms 5 and 0.
    lin = nn.Linear(4, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 0.0]]))

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x, y=None):
            return self.lin(x).squeeze(1)

    d = Packed(D(), 2)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    got = PENALTIES.get(name)(d, real, fake, None, torch.Generator().manual_seed(0)).item()
    assert got == pytest.approx({"wgan-gp": 16.0, "dragan": 16.0, "r1": 12.5}[name], rel=1e-6)


def test_heat_map_scores_each_point_as_a_pack_of_copies():
    d = Packed(FirstRow(), 4)
    points = torch.tensor([[0.0, 1.0], [2.0, 3.0], [-1.0, 5.0]])
    assert d_output(d, points) == pytest.approx(torch.sigmoid(points[:, 0]).numpy())


@pytest.mark.parametrize("overrides,match", [
    (["model.pack=0"], "model.pack"),
    (["model.pack=3"], "multiple of model.pack=3"),  # ring batch 512
    (["model.pack=2", "model.conditional=true"], "unconditional"),
])
def test_bad_pack_is_a_config_error(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("ring-gan", overrides)


def test_bad_pack_on_the_command_line_exits_2(tmp_path, capsys):
    assert cli("train", "ring-gan", "model.pack=3", "--out", tmp_path / "run") == 2
    assert "model.pack=3" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_probe_and_filters_refuse_a_packed_d(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", "dcgan-mnist", "model.pack=2", "train.steps=1", "train.batch_size=8",
               "model.g_width=8", "model.d_width=8", "data.limit=64", "train.progress=false",
               "train.tensorboard=false", "train.device=cpu", "--out", run) == 0
    capsys.readouterr()
    for command in (["probe", run], ["filters", run, "--out", tmp_path / "f.png"]):
        assert cli(*command) == 2
        assert "packs of model.pack=2" in one_error_line(capsys)


def test_a_pack_moves_along_one_line():
    """A packed D's input point is the whole pack, so the penalty's x_hat takes one a per pack
    (Gulrajani et al.'s line between D's inputs), not one per sample of it."""
    seen = []

    class Spy(FirstRow):
        def forward(self, x, y=None):
            seen.append(x.detach().clone())
            return x.flatten(1).pow(2).sum(1)

    m, packs = 4, 6
    real = torch.zeros(m * packs, 2)
    fake = torch.ones(m * packs, 2)
    PENALTIES.get("wgan-gp")(Packed(Spy(), m), real, fake, None, torch.Generator().manual_seed(0))
    (x_hat,) = seen  # (1 - a) * ones: one value in each pack, and a different one per pack
    assert x_hat.shape == (packs, 2 * m)
    assert all(len(set(row.tolist())) == 1 for row in x_hat)
    assert len(set(x_hat[:, 0].tolist())) == packs


def test_wgan_gp_on_packs_by_hand():
    """D(u) = 1/2 ||u||^2 on a pack u: ||grad|| = ||u||. Real packs 0, fake packs of norm 2:
    x_hat = (1 - a) * fake has norm 2 (1 - a), and E (2 (1 - a) - 1)^2 = 1/3 over a ~ U(0, 1)
    (one a per sample would give about 0.09)."""
    class Quadratic(FirstRow):
        def forward(self, x, y=None):
            return 0.5 * x.flatten(1).pow(2).sum(1)

    m, packs = 4, 50000
    real = torch.zeros(m * packs, 2, dtype=torch.float64)
    fake = torch.full((m * packs, 2), 2 / (2 * m) ** 0.5, dtype=torch.float64)
    got = PENALTIES.get("wgan-gp")(Packed(Quadratic(), m), real, fake, None,
                                   torch.Generator().manual_seed(0)).item()
    assert got == pytest.approx(1 / 3, abs=0.01)
