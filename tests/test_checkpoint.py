"""Checkpoints: exact round trips of models and Adam states, mismatches named, crash safety."""
import errno
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ganforge.train.checkpoint as ckpt
from ganforge.config import load_config, to_yaml
from ganforge.errors import CheckpointError
from ganforge.models import build_models
from ganforge.train.checkpoint import (latest_checkpoint, list_checkpoints, load_checkpoint,
                                       load_generator, save_checkpoint)


def make_cfg(*more):
    return load_config("demo", ["model.g_width=8", "model.d_width=8", "model.z_dim=6",
                                "model.conditional=true", *more])


def setup(cfg, seed=0):
    torch.manual_seed(seed)
    g, d = build_models(cfg)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.99))
    return g, d, opt_g, opt_d


def train_a_bit(g, d, opt_g, opt_d, steps=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        z = torch.randn(4, 6, generator=gen)
        y = torch.randint(0, 10, (4,), generator=gen)
        real = torch.rand(4, 1, 28, 28, generator=gen)
        loss_d = d(g(z, y).detach(), y).mean() - d(real, y).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = -d(g(z, y), y).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def optim_equal(o1, o2):
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert s1["state"].keys() == s2["state"].keys() and s1["state"]
    for i in s1["state"]:
        assert s1["state"][i].keys() == s2["state"][i].keys()
        for k in s1["state"][i]:
            a, b = s1["state"][i][k], s2["state"][i][k]
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    # JSON keeps Adam's betas as a list; the values must match exactly
    def norm(groups):
        return [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in groups]
    assert norm(s1["param_groups"]) == norm(s2["param_groups"])


def test_round_trip_is_exact(tmp_path):
    cfg = make_cfg()
    g, d, opt_g, opt_d = setup(cfg)
    train_a_bit(g, d, opt_g, opt_d)
    state = {"rng.torch": torch.get_rng_state(), "data.pos": torch.tensor(3)}
    path = save_checkpoint(tmp_path, 7, g, d, opt_g, opt_d, state)
    assert path == tmp_path / "checkpoints" / "step_000007"
    assert {p.name for p in path.iterdir()} == {
        "generator.safetensors", "discriminator.safetensors", "optim_g.safetensors",
        "optim_d.safetensors", "state.safetensors", "state.json"}
    assert json.loads((path / "state.json").read_text())["step"] == 7

    g2, d2, opt_g2, opt_d2 = setup(cfg, seed=1)
    assert not same_state(g.state_dict(), g2.state_dict())
    step, state2 = load_checkpoint(path, g2, d2, opt_g2, opt_d2)
    assert step == 7
    assert same_state(state, state2)
    assert same_state(g.state_dict(), g2.state_dict())  # parameters and batch-norm buffers
    assert same_state(d.state_dict(), d2.state_dict())
    optim_equal(opt_g, opt_g2)
    optim_equal(opt_d, opt_d2)
    group = opt_d2.param_groups[0]
    assert group["lr"] == 2e-3 and tuple(group["betas"]) == (0.5, 0.99)
    # and the restored optimisers take bitwise the same next steps
    train_a_bit(g, d, opt_g, opt_d, steps=2, seed=5)
    train_a_bit(g2, d2, opt_g2, opt_d2, steps=2, seed=5)
    assert same_state(g.state_dict(), g2.state_dict())
    assert same_state(d.state_dict(), d2.state_dict())


def test_generator_file_holds_every_tensor(tmp_path):
    cfg = make_cfg()
    g, d, opt_g, opt_d = setup(cfg)
    path = save_checkpoint(tmp_path, 1, g, d, opt_g, opt_d, {})
    saved = load_file(path / "generator.safetensors")
    assert same_state(saved, g.state_dict())
    assert any(k.endswith("running_mean") for k in saved)


def test_different_width_names_the_tensor(tmp_path):
    g, d, opt_g, opt_d = setup(make_cfg())
    path = save_checkpoint(tmp_path, 1, g, d, opt_g, opt_d, {})
    g2, d2, opt_g2, opt_d2 = setup(make_cfg("model.g_width=16"))
    before = {k: v.clone() for k, v in g2.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, g2, d2, opt_g2, opt_d2)
    msg = str(info.value)
    assert "\n" not in msg
    assert "generator" in msg and "'blocks.0.0.weight'" in msg
    assert "(16, 16, 7, 7) in the checkpoint" in msg and "(16, 32, 7, 7) in the model" in msg
    assert same_state(before, g2.state_dict())  # nothing half-loaded


def test_different_architecture_names_a_missing_tensor(tmp_path):
    g, d, opt_g, opt_d = setup(make_cfg())
    path = save_checkpoint(tmp_path, 1, g, d, opt_g, opt_d, {})
    g2, d2, opt_g2, opt_d2 = setup(make_cfg("model.arch=mlp", "model.g_hidden=[8]",
                                            "model.d_hidden=[8]"))
    with pytest.raises(CheckpointError, match=r"missing net\.0\.(bias|weight)"):
        load_checkpoint(path, g2, d2, opt_g2, opt_d2)


def test_corrupt_file_is_a_checkpoint_error(tmp_path):
    g, d, opt_g, opt_d = setup(make_cfg())
    path = save_checkpoint(tmp_path, 1, g, d, opt_g, opt_d, {})
    (path / "discriminator.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="discriminator.safetensors"):
        load_checkpoint(path, *setup(make_cfg()))


def test_a_checkpoint_of_nan_weights_is_refused(tmp_path):
    """Written by hand or by an older ganforge (training now stops before it writes one): eval,
    sample and resume refuse it in one line instead of drawing or training on NaN."""
    g, d, opt_g, opt_d = setup(make_cfg())
    with torch.no_grad():
        next(g.parameters())[0].fill_(float("nan"))
    path = save_checkpoint(tmp_path, 1, g, d, opt_g, opt_d, {})
    with pytest.raises(CheckpointError, match=r"generator in '.*step_000001' holds NaN or "
                                              r"infinite weights \('[\w.]+'\): the run had "
                                              "diverged by then; use an earlier checkpoint \\(--step; "
                                              "for --resume, move the newer step_"):
        load_checkpoint(path, *setup(make_cfg()))


def failing_on_call(monkeypatch, n):
    real = ckpt.save_tensors
    calls = {"n": 0}

    def save_tensors(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(ckpt, "save_tensors", save_tensors)
    return calls


def files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    cfg = make_cfg()
    g, d, opt_g, opt_d = setup(cfg)
    first = save_checkpoint(tmp_path, 10, g, d, opt_g, opt_d, {"x": torch.tensor(1)})
    before = files(first)
    train_a_bit(g, d, opt_g, opt_d)
    calls = failing_on_call(monkeypatch, 3)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path, 20, g, d, opt_g, opt_d, {"x": torch.tensor(2)})
    assert calls["n"] == 3
    assert latest_checkpoint(tmp_path) == first
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10]
    assert files(first) == before
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_000010"]  # no .tmp
    g2, d2, og2, od2 = setup(cfg, seed=3)
    step, state = load_checkpoint(latest_checkpoint(tmp_path), g2, d2, og2, od2)
    assert step == 10 and state["x"].item() == 1
    monkeypatch.undo()
    save_checkpoint(tmp_path, 20, g, d, opt_g, opt_d, {"x": torch.tensor(2)})
    assert latest_checkpoint(tmp_path).name == "step_000020"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == \
        ["step_000010", "step_000020"]


def test_crash_while_resaving_the_same_step(tmp_path, monkeypatch):
    g, d, opt_g, opt_d = setup(make_cfg())
    first = save_checkpoint(tmp_path, 10, g, d, opt_g, opt_d, {})
    before = files(first)
    train_a_bit(g, d, opt_g, opt_d)
    failing_on_call(monkeypatch, 3)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 10, g, d, opt_g, opt_d, {})
    assert latest_checkpoint(tmp_path) == first and files(first) == before
    monkeypatch.undo()
    save_checkpoint(tmp_path, 10, g, d, opt_g, opt_d, {})  # a successful re-save replaces it
    assert files(first) != before
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000010"]


def test_latest_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        latest_checkpoint(tmp_path)
    g, d, opt_g, opt_d = setup(make_cfg())
    for step in (5, 100, 20):
        save_checkpoint(tmp_path, step, g, d, opt_g, opt_d, {})
    assert latest_checkpoint(tmp_path).name == "step_000100"  # by number, not save order
    (tmp_path / "checkpoints" / "step_000200").mkdir()  # no state.json: incomplete, ignored
    assert latest_checkpoint(tmp_path).name == "step_000100"
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 20, 100]


def test_load_generator(tmp_path):
    cfg = make_cfg()
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    g, d, opt_g, opt_d = setup(cfg)
    save_checkpoint(tmp_path, 3, g, d, opt_g, opt_d, {})
    train_a_bit(g, d, opt_g, opt_d)
    save_checkpoint(tmp_path, 6, g, d, opt_g, opt_d, {})
    g6, cfg6 = load_generator(tmp_path)
    assert cfg6 == cfg
    assert not g6.training
    assert same_state(g6.state_dict(), g.state_dict())
    g3, _ = load_generator(tmp_path, step=3)
    assert not same_state(g3.state_dict(), g.state_dict())
    assert same_state(load_generator(tmp_path, step=np.int64(3))[0].state_dict(), g3.state_dict())
    for step in ("3", 3.0, True, -3):
        with pytest.raises(ValueError, match=f"step={step!r}: it must be a whole number >= 0"):
            load_generator(tmp_path, step=step)
    z, y = torch.randn(2, 6), torch.tensor([1, 2])
    g.eval()
    with torch.no_grad():
        assert torch.equal(g6(z, y), g(z, y))
    with pytest.raises(CheckpointError, match="available steps: 3, 6"):
        load_generator(tmp_path, step=4)
    # a checkpoint folder or a file of the run: pointed at the run folder
    ckpt = next((tmp_path / "checkpoints").iterdir())  # either step's folder
    for inside in (ckpt, ckpt / "generator.safetensors", tmp_path / "config.yaml"):
        with pytest.raises(CheckpointError, match=f"is inside the run folder '{tmp_path}'; "
                           "pass that folder, with --step N"):
            load_generator(inside)
    with pytest.raises(TypeError, match="ema='no': pass True"):
        load_generator(tmp_path, ema="no")


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    """A write that fails half way carries no file name; save_tensors adds it."""
    from pathlib import Path

    from ganforge.files import save_tensors

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as info:
        save_tensors({"x": torch.zeros(3)}, tmp_path / "x.safetensors")
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(tmp_path / "x.safetensors")


def test_full_disk_errors_in_other_threads_stay_quiet_during_training(monkeypatch):
    """TensorBoard's writer thread meets a full disk before the loop does; only the loop's one
    line should reach the user. Other errors in threads still go to the hook there was."""
    import threading

    from ganforge.train.loop import _quiet_full_disk_in_threads

    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))

    def fail(error):
        def run():
            raise error
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()

    with _quiet_full_disk_in_threads():
        fail(OSError(errno.ENOSPC, "No space left on device"))
        assert seen == []
        fail(ValueError("a real bug"))
        assert seen == [ValueError]
    fail(OSError(errno.ENOSPC, "No space left on device"))  # the hook there was is back
    assert seen == [ValueError, OSError]


def test_a_checkpoint_of_infinite_weights_is_refused(tmp_path):
    from ganforge.train.checkpoint import load_checkpoint, save_checkpoint
    g, d, opt_g, opt_d = setup(make_cfg())
    with torch.no_grad():
        next(d.parameters())[0].fill_(float("inf"))
    path = save_checkpoint(tmp_path, 1, g, d, opt_g, opt_d, {})
    with pytest.raises(CheckpointError, match=r"discriminator in '.*' holds NaN or infinite "
                                              r"weights"):
        load_checkpoint(path, *setup(make_cfg()))
