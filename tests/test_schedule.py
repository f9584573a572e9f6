"""optim.decay: the learning-rate multiplier is a pure function of the step."""
import math

import pytest

from ganforge.config import load_config
from ganforge.errors import ConfigError
from ganforge.train.loop import lr_factor, noise_std


def test_constant_linear_and_cosine_by_hand():
    assert lr_factor("none", 7, 10) == 1.0
    assert lr_factor("linear", 1, 10) == 1.0
    assert lr_factor("linear", 6, 10) == pytest.approx(0.5)
    assert lr_factor("linear", 10, 10) == pytest.approx(0.1)
    assert lr_factor("cosine", 1, 10) == 1.0
    assert lr_factor("cosine", 6, 10) == pytest.approx(0.5)
    assert lr_factor("cosine", 3, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))


def test_instance_noise_falls_linearly_to_zero_and_stays_there():
    loss = load_config("ring-gan", ["loss.instance_noise=0.8"]).loss
    assert noise_std(loss, 1, 10) == pytest.approx(0.8)
    assert noise_std(loss, 6, 10) == pytest.approx(0.4)
    loss.instance_noise_steps = 4
    assert noise_std(loss, 3, 10) == pytest.approx(0.4)
    assert [noise_std(loss, s, 10) for s in (5, 6, 10)] == [0.0, 0.0, 0.0]
    assert noise_std(load_config("ring-gan").loss, 1, 10) == 0.0  # off by default


def test_unknown_decay_is_rejected_with_the_choices():
    with pytest.raises(ConfigError, match="optim.decay.*none, linear, cosine"):
        load_config("ring-gan", ["optim.decay=step"])


def test_the_loop_applies_the_schedule(tmp_path):
    import json

    from ganforge.train.checkpoint import latest_checkpoint
    from ganforge.train.loop import train

    cfg = load_config("ring-gan", ["train.steps=4", "train.batch_size=16", "model.z_dim=2",
                                   "model.g_hidden=[8]", "model.d_hidden=[8]",
                                   "train.progress=false", "train.tensorboard=false",
                                   "train.eval_every=0", "optim.lr_g=0.004", "optim.lr_d=0.002"])
    run = train(cfg, tmp_path / "run", log=lambda *a: None)
    groups = json.loads((latest_checkpoint(run) / "state.json").read_text())["param_groups"]
    # the last step (4 of 4) ran at 1/4 of the base rates
    assert groups["optim_g"][0]["lr"] == pytest.approx(0.001)
    assert groups["optim_d"][0]["lr"] == pytest.approx(0.0005)
