"""The training loop's schedule is Algorithm 1 of Goodfellow et al. (2014), checked on one
iteration with k = train.d_steps = 2 and train.g_steps = 2 by recording every call of G, D and
their optimisers: each D update sees a fresh real minibatch and fresh noise, G runs once for
the first D update and its first update (its output detached for D), and D is frozen while G
trains."""
import torch

import ganforge.train.loop as loop
from ganforge.config import load_config
from ganforge.models import build_models


def test_one_iteration_follows_algorithm_1(tmp_path, monkeypatch):
    calls, made = [], {}

    def spy_models(cfg):
        g, d = build_models(cfg)
        made.update(g=g, d=d)
        g_forward, d_forward = g.forward, d.forward

        def g_spy(z, y=None):
            calls.append(("G", z.detach().clone(), torch.is_grad_enabled()))
            return g_forward(z, y)

        def d_spy(x, y=None):
            calls.append(("D", x.detach().clone(), x.requires_grad,
                          all(p.requires_grad for p in d.parameters())))
            return d_forward(x, y)

        g.forward, d.forward = g_spy, d_spy
        return g, d

    def spy_optimizer(cfg, params, *args, **kwargs):
        params = list(params)
        opt = make_optimizer(cfg, params, *args, **kwargs)
        name = "opt_g" if params[0] is next(made["g"].parameters()) else "opt_d"
        step = opt.step
        opt.step = lambda *a, **k: (calls.append((name,)), step(*a, **k))[1]
        return opt

    make_optimizer = loop.make_optimizer
    monkeypatch.setattr(loop, "build_models", spy_models)
    monkeypatch.setattr(loop, "make_optimizer", spy_optimizer)
    # pictures, and the check of G's and D's output shapes before the run, call G and D too
    for name in ("save_frame", "make_gif", "plot_curves", "check_outputs"):
        monkeypatch.setattr(loop, name, lambda *a, **k: None)
    cfg = load_config("ring-gan", ["train.steps=1", "train.batch_size=8", "model.z_dim=2",
                                   "model.g_hidden=[8]", "model.d_hidden=[8]",
                                   "train.d_steps=2", "train.g_steps=2", "train.eval_every=0",
                                   "train.progress=false", "train.tensorboard=false",
                                   "train.device=cpu"])
    loop.train(cfg, tmp_path / "run", log=None)

    assert [c[0] for c in calls] == ["G", "D", "D", "opt_d",  # D update 1: G(z1) reused
                                     "G", "D", "D", "opt_d",  # D update 2: its own data
                                     "D", "opt_g",            # G update 1: G(z1) again
                                     "G", "D", "opt_g"]       # G update 2: fresh noise
    g1, d_real1, d_fake1, _, g2, d_real2, d_fake2, _, g_fake1, _, g3, g_fake2, _ = calls
    # fresh noise for each D update and each G update after the first; a fresh real batch
    assert not torch.equal(g1[1], g2[1]) and not torch.equal(g1[1], g3[1])
    assert not torch.equal(g2[1], g3[1]) and not torch.equal(d_real1[1], d_real2[1])
    # G's first output (built with its graph) is what D's first update and G's first update
    # judge; the extra D update draws G's samples without a graph
    assert g1[2] and not g2[2] and g3[2]
    assert torch.equal(d_fake1[1], g_fake1[1]) and not torch.equal(d_fake1[1], d_fake2[1])
    # D trains on detached samples; while G trains D is frozen and the samples carry G's graph
    for call in (d_real1, d_fake1, d_real2, d_fake2):
        assert call[2] is False and call[3] is True
    for call in (g_fake1, g_fake2):
        assert call[2] is True and call[3] is False
    assert all(p.requires_grad for p in made["d"].parameters())  # unfrozen after the iteration


def test_feature_matching_under_instance_noise_compares_blurred_real_data(tmp_path, monkeypatch):
    import ganforge.train.loop as loop
    real_build, seen = loop.build_models, []

    def spy(cfg):
        g, d = real_build(cfg)
        features = d.features

        def features_spy(x, y=None):
            if not torch.is_grad_enabled():  # the G phase's real batch, under no_grad
                seen.append(x.detach().clone())
            return features(x, y)

        d.features = features_spy
        return g, d

    monkeypatch.setattr(loop, "build_models", spy)
    for name in ("save_frame", "make_gif", "plot_curves", "check_outputs"):
        monkeypatch.setattr(loop, name, lambda *a, **k: None)
    cfg = load_config("ring-gan", ["train.steps=1", "train.batch_size=64", "model.z_dim=2",
                                   "model.g_hidden=[8]", "model.d_hidden=[8]",
                                   "loss.generator=feature-matching", "loss.instance_noise=1.0",
                                   "train.eval_every=0", "train.progress=false",
                                   "train.tensorboard=false", "train.device=cpu"])
    loop.train(cfg, tmp_path / "run", log=None)
    (real,) = seen  # the G phase's real batch: ring points (radius 2, std 0.02) plus noise 1
    assert (real.norm(dim=1) - 2).abs().max() > 0.5
