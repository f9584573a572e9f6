"""The unrolled-GAN surrogate (train/unrolled.py) on tiny float64 MLPs: D_K matches really
stepping a copy of D with its Adam, G's gradient through K steps matches central finite
differences, the first-order variant is the gradient against a detached D_K, and nothing of D or
its optimiser changes."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.losses import D_LOSSES, G_LOSSES
from ganforge.train.unrolled import unrolled_fake_logits

D_LOSS = D_LOSSES.get("cross-entropy")
G_LOSS = G_LOSSES.get("non-saturating")


class Disc(nn.Module):
    """2 -> 8 -> 1 logits; optional batch norm, optional parameter the loss never reaches."""

    def __init__(self, act: type[nn.Module] = nn.Tanh, bn: bool = False, unused: bool = False):
        super().__init__()
        layers = [nn.Linear(2, 8), *([nn.BatchNorm1d(8)] if bn else []), act(), nn.Linear(8, 1)]
        self.net = nn.Sequential(*layers)
        self.unused = nn.Parameter(torch.ones(3)) if unused else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(1)


def make(seed: int = 0, warm_steps: int = 2, lr: float = 0.05, groups: bool = False, **disc):
    """G (2 -> 8 -> 2), D, D's Adam after `warm_steps` real updates, a real batch and z."""
    torch.manual_seed(seed)
    g = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    d = Disc(**disc).double()
    if groups:  # different hyperparameters per parameter group
        opt_d = torch.optim.Adam([
            {"params": d.net[0].parameters(), "lr": 0.1, "betas": (0.0, 0.9)},
            {"params": [p for n, p in d.named_parameters() if not n.startswith("net.0.")]}],
            lr=lr, betas=(0.5, 0.999))
    else:
        opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    real = torch.randn(16, 2, dtype=torch.float64) * 0.5 + torch.tensor([1.0, -0.5]).double()
    z = torch.randn(16, 2, dtype=torch.float64)
    for _ in range(warm_steps):
        with torch.no_grad():
            fake = g(torch.randn(16, 2, dtype=torch.float64))
        opt_d.zero_grad()
        D_LOSS(d(real), d(fake)).backward()
        opt_d.step()
    return g, d, opt_d, real, z


def stepped_copy(d: nn.Module, opt_d: torch.optim.Optimizer, real, fake, steps: int,
                 clip: float | None = None) -> nn.Module:
    """A deep copy of D really advanced `steps` times by torch.optim.Adam from opt_d's state."""
    dc = copy.deepcopy(d)
    groups = [{**{k: v for k, v in grp.items() if k != "params"},
               "params": [p for p, q in zip(dc.parameters(), d.parameters())
                          if any(q is r for r in grp["params"])]} for grp in opt_d.param_groups]
    opt = torch.optim.Adam(groups)
    opt.load_state_dict(opt_d.state_dict())
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        D_LOSS(dc(real), dc(fake.detach())).backward()
        opt.step()
        if clip is not None:
            with torch.no_grad():
                for p in dc.parameters():
                    p.clamp_(-clip, clip)
    return dc.requires_grad_(False)


def g_grads(g: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(g.parameters())))


def test_zero_steps_is_plain_d():
    g, d, opt_d, real, z = make()
    fake = g(z)
    out = unrolled_fake_logits(d, opt_d, D_LOSS, real, fake, None, steps=0)
    assert torch.equal(out, d(fake))
    plain = g_grads(g, G_LOSS(d(g(z))))
    for a, b in zip(g_grads(g, G_LOSS(out)), plain):
        assert torch.equal(a, b)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("setup", [{}, {"bn": True}, {"groups": True}, {"unused": True},
                                   {"warm_steps": 0}])
def test_unrolled_d_matches_real_adam_steps(steps, setup):
    g, d, opt_d, real, z = make(**setup)
    fake = g(z)
    out = unrolled_fake_logits(d, opt_d, D_LOSS, real, fake, None, steps=steps)
    expected = stepped_copy(d, opt_d, real, fake, steps)(fake)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(out, d(fake), atol=1e-6)  # D really moved


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_g_gradient_through_unroll_matches_finite_differences(steps):
    g, d, opt_d, real, z = make()

    def loss() -> torch.Tensor:
        return G_LOSS(unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, steps=steps))

    analytic = g_grads(g, loss())
    eps = 1e-6
    with torch.no_grad():
        for p, grad in zip(g.parameters(), analytic):
            numeric = torch.zeros_like(p)
            flat, num = p.view(-1), numeric.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = loss().item()
                flat[i] = old - eps
                down = loss().item()
                flat[i] = old
                num[i] = (up - down) / (2 * eps)
            assert ((grad - numeric).norm() / numeric.norm()).item() < 1e-4


@pytest.mark.parametrize("steps", [1, 3])
def test_first_order_is_gradient_against_detached_d_k(steps):
    g, d, opt_d, real, z = make()
    fake = g(z)
    first = g_grads(g, G_LOSS(unrolled_fake_logits(d, opt_d, D_LOSS, real, fake, None, steps,
                                                   first_order=True)))
    second = g_grads(g, G_LOSS(unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, steps)))
    d_k = stepped_copy(d, opt_d, real, fake, steps)
    detached = g_grads(g, G_LOSS(d_k(g(z))))
    for a, b, c in zip(first, detached, second):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    diff = sum((a - c).norm() for a, c in zip(first, second)) / sum(c.norm() for c in second)
    assert diff > 1e-3


def test_works_under_no_grad():
    g, d, opt_d, real, z = make()
    expected = unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, steps=2)
    with torch.no_grad():
        out = unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, steps=2)
    assert not out.requires_grad
    torch.testing.assert_close(out, expected.detach(), rtol=0, atol=1e-14)


def test_works_with_d_frozen_as_in_the_training_loop():
    g, d, opt_d, real, z = make()
    expected = g_grads(g, G_LOSS(unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, 2)))
    d.requires_grad_(False)  # the loop freezes D while G trains
    got = g_grads(g, G_LOSS(unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, 2)))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_clip_clamps_after_every_step():
    g, d, opt_d, real, z = make(lr=0.2)
    fake = g(z)
    out = unrolled_fake_logits(d, opt_d, D_LOSS, real, fake, None, steps=2, clip=0.3)
    expected = stepped_copy(d, opt_d, real, fake, 2, clip=0.3)(fake)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(out, stepped_copy(d, opt_d, real, fake, 2)(fake))


def test_zero_gradient_entries_give_finite_g_gradient():
    # A dead ReLU unit: its weights get gradient exactly 0, so Adam's v stays 0 (sqrt(0)).
    g, d, opt_d, real, z = make(act=nn.ReLU, warm_steps=0)
    with torch.no_grad():
        d.net[0].weight[0].zero_()
        d.net[0].bias[0] = -1.0
    fake = g(z)
    out = unrolled_fake_logits(d, opt_d, D_LOSS, real, fake, None, steps=2)
    torch.testing.assert_close(out, stepped_copy(d, opt_d, real, fake, 2)(fake), rtol=0, atol=1e-12)
    assert all(torch.isfinite(x).all() for x in g_grads(g, G_LOSS(out)))


@pytest.mark.parametrize("first_order", [False, True])
def test_d_and_its_optimiser_are_untouched(first_order):
    g, d, opt_d, real, z = make(bn=True)
    d.train()
    before = copy.deepcopy(d.state_dict())
    opt_before = copy.deepcopy(opt_d.state_dict())
    opt_d.zero_grad(set_to_none=True)
    out = unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, steps=3, first_order=first_order)
    G_LOSS(out).backward()
    after, opt_after = d.state_dict(), opt_d.state_dict()
    assert before.keys() == after.keys() and len([k for k in after if "running" in k]) == 2
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in d.parameters())
    assert opt_before["param_groups"] == opt_after["param_groups"]
    assert opt_before["state"].keys() == opt_after["state"].keys()
    for i, s in opt_before["state"].items():
        for k, v in s.items():
            assert torch.equal(v, opt_after["state"][i][k]), (i, k)


@pytest.mark.parametrize("make_opt", [
    lambda ps: torch.optim.SGD(ps, lr=0.1),
    lambda ps: torch.optim.RMSprop(ps),
    lambda ps: torch.optim.AdamW(ps),  # weight_decay=1e-2 by default
    lambda ps: torch.optim.Adam(ps, amsgrad=True),
    lambda ps: torch.optim.Adam(ps, weight_decay=1e-4),
    lambda ps: torch.optim.Adam(ps, maximize=True),
])
def test_unsupported_optimiser_is_a_config_error(make_opt):
    g, d, _, real, z = make(warm_steps=0)
    with pytest.raises(ConfigError):
        unrolled_fake_logits(d, make_opt(d.parameters()), D_LOSS, real, g(z), None, steps=1)


def test_negative_steps_is_a_config_error():
    g, d, opt_d, real, z = make(warm_steps=0)
    with pytest.raises(ConfigError):
        unrolled_fake_logits(d, opt_d, D_LOSS, real, g(z), None, steps=-1)


@pytest.mark.parametrize("setting,first_order", [([], False),
                                                 (["train.unroll_first_order=true"], True)])
def test_the_loop_passes_the_unroll_settings(setting, first_order, tmp_path, monkeypatch):
    """train.unroll_steps and train.unroll_first_order reach the unroll the loop calls for G's
    loss, once per G step (the unroll itself is checked above)."""
    import ganforge.train.loop as loop
    from ganforge.config import load_config

    calls = []

    def spy(*args, **kwargs):
        calls.append((args[6], kwargs["first_order"]))
        return unrolled_fake_logits(*args, **kwargs)

    monkeypatch.setattr(loop, "unrolled_fake_logits", spy)
    cfg = load_config("ring-unrolled", [
        "train.steps=3", "train.batch_size=32", "model.z_dim=4", "model.g_hidden=[8]",
        "model.d_hidden=[8]", "train.progress=false", "train.tensorboard=false",
        "train.eval_every=0", "train.unroll_steps=2", *setting])
    loop.train(cfg, tmp_path / "run", log=None)
    assert calls == [(2, first_order)] * 3
