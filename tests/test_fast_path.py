"""The fast path (train.precision, train.memory_format, train.compile, fused Adam on CUDA),
exercised on the CPU: what "auto" resolves to, that bf16 autocast reaches the convolutions but
never the losses, that channels_last trains what contiguous trains and checkpoints and resumes
exactly, and that a compiled run matches an eager one."""
from __future__ import annotations

import contextlib
import json
import shutil

import pytest
import torch
from conftest import read_metrics
from helpers import assert_bitwise_equal, ckpt, cli, one_error_line

import ganforge.train.loop as loop
from ganforge.config import load_config
from ganforge.train.loop import fast_path, make_optimizer


@pytest.mark.parametrize("device, precision, fmt, want", [
    ("cpu", "auto", "auto", (None, torch.contiguous_format)),
    ("cuda", "auto", "auto", (torch.bfloat16, torch.channels_last)),
    ("cuda", "fp32", "contiguous", (None, torch.contiguous_format)),
    ("cpu", "bf16", "channels_last", (torch.bfloat16, torch.channels_last)),
])
def test_auto_turns_the_fast_path_on_for_cuda_only(device, precision, fmt, want):
    cfg = load_config("demo", [f"train.precision={precision}", f"train.memory_format={fmt}"])
    assert fast_path(cfg.train, torch.device(device)) == want


def test_cudnn_times_its_algorithms_on_cuda_only(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cfg = load_config("demo")
    fast_path(cfg.train, torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    fast_path(cfg.train, torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is True


def test_train_gives_back_the_cudnn_setting_it_found(monkeypatch, tmp_path):
    from ganforge.train import loop

    def as_on_cuda(t, device):  # fast_path on CUDA turns autotuning on; the CPU run goes on
        torch.backends.cudnn.benchmark = True
        return real(t, device)

    real = loop.fast_path
    monkeypatch.setattr(loop, "fast_path", as_on_cuda)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cfg = load_config("demo", ["train.steps=2", "train.progress=false",
                               "train.tensorboard=false"])
    loop.train(cfg, tmp_path / "run", log=None)
    assert torch.backends.cudnn.benchmark is False


def test_adam_is_fused_on_cuda_only():
    cfg = load_config("demo")
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(cfg, params, 1e-3, torch.device("cuda")).defaults["fused"] is True
    assert not make_optimizer(cfg, params, 1e-3, torch.device("cpu")).defaults["fused"]


@pytest.mark.parametrize("key, value", [("train.precision", "fp16"),
                                        ("train.memory_format", "nhwc")])
def test_bad_fast_path_values_name_the_choices(tiny, tmp_path, capsys, key, value):
    assert cli("train", "demo", *tiny(2), f"{key}={value}", "--out", tmp_path / "r") == 2
    line = one_error_line(capsys)
    assert key in line and "auto" in line
    assert not (tmp_path / "r").exists()


def test_bf16_autocast_reaches_the_convolutions_but_losses_see_float32(tiny, tmp_path,
                                                                      monkeypatch):
    conv_dtypes, loss_dtypes = set(), set()
    real_build = loop.build_models

    def build(cfg):
        g, d = real_build(cfg)
        for m in (*g.modules(), *d.modules()):
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.register_forward_hook(lambda mod, i, out: conv_dtypes.add(out.dtype))
        return g, d

    monkeypatch.setattr(loop, "build_models", build)
    d_loss = loop.D_LOSSES.get("cross-entropy")
    monkeypatch.setitem(loop.D_LOSSES._items, "cross-entropy",
                        lambda r, f: loss_dtypes.update({r.dtype, f.dtype}) or d_loss(r, f))
    assert cli("train", "demo", *tiny(10), "train.precision=bf16", "train.log_every=1",
               "--out", tmp_path / "bf16") == 0
    # bf16 in the training steps (the sample grids are drawn in float32, outside autocast)
    assert torch.bfloat16 in conv_dtypes and loss_dtypes == {torch.float32}
    assert all(v.dtype == torch.float32 for v in ckpt(tmp_path / "bf16", 10).values()
               if v.is_floating_point())  # the weights themselves stay float32

    monkeypatch.setattr(loop, "build_models", real_build)
    assert cli("train", "demo", *tiny(1), "train.log_every=1", "--out", tmp_path / "fp32") == 0
    first_bf16, first_fp32 = read_metrics(tmp_path / "bf16")[0], read_metrics(tmp_path / "fp32")[0]
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):  # same step, bf16 rounding apart
        assert first_bf16[k] == pytest.approx(first_fp32[k], rel=0.05), k


def test_channels_last_trains_like_contiguous_and_resumes_exactly(tiny, tmp_path):
    cl = "train.memory_format=channels_last"
    assert cli("train", "demo", *tiny(2), "train.log_every=1", "--out", tmp_path / "nchw") == 0
    assert cli("train", "demo", *tiny(2), cl, "train.log_every=1", "--out", tmp_path / "nhwc") == 0
    a, b = ckpt(tmp_path / "nchw", 2), ckpt(tmp_path / "nhwc", 2)
    assert a.keys() == b.keys()
    for k in a:  # the same function, summed in another order
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-3), k

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli("train", "demo", *tiny(20), cl, "--out", straight) == 0
    assert cli("train", "demo", *tiny(10), cl, "--out", split) == 0
    assert cli("train", "--resume", split, "train.steps=20") == 0
    for name in ("generator", "discriminator", "optim_d"):
        assert_bitwise_equal(ckpt(straight, 20, name), ckpt(split, 20, name))


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on the CPU needs a C compiler")
def test_compiled_run_matches_the_eager_one(tiny, tmp_path):
    mlp = ["model.arch=mlp", "train.log_every=1"]
    assert cli("train", "demo", *tiny(3), *mlp, "--out", tmp_path / "eager") == 0
    assert cli("train", "demo", *tiny(3), *mlp, "train.compile=true",
               "--out", tmp_path / "compiled") == 0
    for name in ("generator", "discriminator"):  # plain keys: the compiled wrapper is not saved
        a, b = ckpt(tmp_path / "eager", 3, name), ckpt(tmp_path / "compiled", 3, name)
        assert a.keys() == b.keys() and not any("_orig_mod" in k for k in b)
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    for r, s in zip(read_metrics(tmp_path / "eager"), read_metrics(tmp_path / "compiled")):
        assert r["d_loss"] == pytest.approx(s["d_loss"], rel=1e-4)


@pytest.mark.parametrize("extra, graphed", [
    ([], True),
    (["train.cuda_graph=disabled"], False),
    (["train.d_steps=2"], False),
    (["loss.penalty=r1"], False),
    (["loss.instance_noise=0.1"], False),  # the std changes from step to step
    (["optim.decay=linear"], True),
    (["optim.name=rmsprop"], False),
])
def test_cuda_graph_auto_captures_only_steps_that_replay_as_recorded(extra, graphed):
    cfg = load_config("demo", extra)
    assert loop.use_cuda_graph(cfg, torch.device("cuda")) is graphed
    assert loop.use_cuda_graph(cfg, torch.device("cpu")) is False


@pytest.mark.parametrize("extra, why", [
    ([], "a CUDA device"),
    (["train.device=cuda", "train.g_steps=2"], "train.g_steps=1"),
])
def test_cuda_graph_enabled_says_why_it_cannot(tiny, tmp_path, capsys, monkeypatch, extra, why):
    monkeypatch.setattr(loop, "resolve_device", lambda name: torch.device(
        "cuda" if name == "cuda" else "cpu"))  # claims CUDA without touching it
    monkeypatch.setattr(torch.random, "fork_rng", lambda devices: contextlib.nullcontext())
    assert cli("train", "demo", *tiny(2), "train.cuda_graph=enabled", *extra,
               "--out", tmp_path / "r") == 2
    line = one_error_line(capsys)
    assert "train.cuda_graph=enabled needs" in line and why in line
    assert not (tmp_path / "r").exists()


def test_a_tensor_learning_rate_is_saved_as_a_number():
    from ganforge.train.checkpoint import _optim_to_files

    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([p], lr=1e-3, foreach=False)
    opt.param_groups[0]["lr"] = torch.tensor(2.5e-4)  # what a CUDA-graph run with decay holds
    p.grad = torch.ones(2)
    opt.step()
    _, groups = _optim_to_files(opt)
    assert groups[0]["lr"] == pytest.approx(2.5e-4) and isinstance(groups[0]["lr"], float)
    json.dumps(groups)
