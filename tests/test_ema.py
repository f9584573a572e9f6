"""The moving average of G (train.ema_decay): the update rule, that it never changes training,
its checkpoint file, exact resume, and which weights the commands load."""
import pytest
import torch
from torch import nn

from helpers import assert_bitwise_equal, ckpt, cli, differs, one_error_line
from ganforge.config import load_config, preset_names
from ganforge.errors import CheckpointError
from ganforge.train.checkpoint import load_generator
from ganforge.train.ema import EMA


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_update_is_the_moving_average_after_a_copying_start():
    g = _net()
    ema = EMA(g, decay=0.9, start=2)
    expected = {k: v.clone() for k, v in g.state_dict().items()}
    for step in range(1, 6):
        with torch.no_grad():  # a training step: new weights and batch-norm statistics
            for p in g.parameters():
                p.add_(torch.randn_like(p))
        g.train()(torch.randn(8, 3))
        ema.update(g, step)
        for k, v in g.state_dict().items():
            if not v.is_floating_point():
                expected[k] = v.clone()  # num_batches_tracked is copied
            elif step <= 2:
                expected[k] = v.clone()  # until train.ema_start: a copy
            else:
                expected[k] = 0.9 * expected[k] + 0.1 * v
    own = ema.model.state_dict()
    assert own["1.num_batches_tracked"].item() == 5
    for k, v in expected.items():
        torch.testing.assert_close(own[k], v, rtol=1e-6, atol=1e-6, msg=k)
    assert differs(own, g.state_dict())  # averaged, not the live weights
    assert not any(p.requires_grad for p in ema.model.parameters())


@pytest.mark.parametrize("decay, start", [(1.0, 0), (-0.1, 0), (0.99, -1)])
def test_bad_settings_are_one_line_errors(decay, start, capsys, tmp_path):
    rc = cli("train", "demo", f"train.ema_decay={decay}", f"train.ema_start={start}",
             "--out", tmp_path / "run")
    assert rc == 2
    line = one_error_line(capsys)
    assert "train.ema" in line and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("ema")
    assert cli("train", "demo", *tiny(20), "--out", root / "plain") == 0
    assert cli("train", "demo", *tiny(20, "train.ema_decay=0.9", "train.ema_start=5"),
               "--out", root / "ema") == 0
    return root


def test_averaging_never_changes_training(runs):
    assert_bitwise_equal(ckpt(runs / "plain", 20), ckpt(runs / "ema", 20))
    assert_bitwise_equal(ckpt(runs / "plain", 20, "discriminator"),
                         ckpt(runs / "ema", 20, "discriminator"))
    assert not (runs / "plain/checkpoints/step_000020/generator_ema.safetensors").exists()
    assert differs(ckpt(runs / "ema", 20, "generator_ema"), ckpt(runs / "ema", 20))


def test_resume_continues_the_average_exactly(runs, tiny, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(10, "train.ema_decay=0.9", "train.ema_start=5"),
               "--out", run) == 0
    assert cli("train", "--resume", run, "train.steps=20") == 0
    assert_bitwise_equal(ckpt(run, 20, "generator_ema"), ckpt(runs / "ema", 20, "generator_ema"))


def test_resume_that_turns_averaging_on_starts_from_g(runs, tiny, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(10), "--out", run) == 0
    assert cli("train", "--resume", run, "train.steps=11", "train.ema_decay=0.5") == 0
    g10, g11, avg = ckpt(run, 10), ckpt(run, 11), ckpt(run, 11, "generator_ema")
    for k, v in avg.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.5 * g10[k] + 0.5 * g11[k], msg=k)


def test_commands_load_the_average_unless_told_not_to(runs, tmp_path):
    avg, _ = load_generator(runs / "ema")
    raw, _ = load_generator(runs / "ema", ema=False)
    assert_bitwise_equal(avg.state_dict(), ckpt(runs / "ema", 20, "generator_ema"))
    assert_bitwise_equal(raw.state_dict(), ckpt(runs / "ema", 20))
    with pytest.raises(CheckpointError, match="train.ema_decay=0"):
        load_generator(runs / "plain", ema=True)
    plain, _ = load_generator(runs / "plain")  # no average kept: the trained weights
    assert_bitwise_equal(plain.state_dict(), ckpt(runs / "plain", 20))

    import numpy as np
    assert cli("sample", runs / "ema", "--n", 8, "--out", tmp_path / "a.npy") == 0
    assert cli("sample", runs / "ema", "--n", 8, "--no-ema", "--out", tmp_path / "r.npy") == 0
    a, r = np.load(tmp_path / "a.npy"), np.load(tmp_path / "r.npy")
    assert a.shape == r.shape == (8, 1, 28, 28) and not np.array_equal(a, r)


def test_averaging_is_off_in_every_preset():  # as README.md says
    for name in preset_names():
        assert load_config(name).train.ema_decay == 0.0, name


def test_the_loop_counts_ema_start_in_training_steps(tmp_path):
    """With train.ema_start=3 the average is G itself after step 3 and averages from step 4:
    ema_4 = 0.9 ema_3 + 0.1 g_4 (the loop's steps are 1-based, as EMA.update's)."""
    from ganforge.train.loop import train

    cfg = load_config("ring-gan", [
        "train.steps=4", "train.batch_size=32", "model.z_dim=4", "model.g_hidden=[8]",
        "model.d_hidden=[8]", "train.progress=false", "train.tensorboard=false",
        "train.eval_every=0", "train.checkpoint_every=1", "train.ema_decay=0.9",
        "train.ema_start=3"])
    run = train(cfg, tmp_path / "run", log=None)
    weights = {(step, name): ckpt(run, step, name)
               for step in (2, 3, 4) for name in ("generator", "generator_ema")}
    assert_bitwise_equal(weights[3, "generator"], weights[3, "generator_ema"])
    assert differs(weights[2, "generator"], weights[3, "generator"])
    for k, ema in weights[4, "generator_ema"].items():
        expected = 0.9 * weights[3, "generator_ema"][k] + 0.1 * weights[4, "generator"][k]
        torch.testing.assert_close(ema, expected, rtol=1e-6, atol=1e-7, msg=k)
