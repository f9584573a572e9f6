"""The mode-collapse lab end to end through ``ganforge.cli.main``: every toy preset runs a few
steps and leaves frames, a GIF and mode metrics; the remedies (penalties, weight clipping,
unrolling, feature matching, minibatch discrimination, a fixed training set) resume bit for bit;
``eval``, ``sample`` and ``theory`` on toy runs.

Tiny settings throughout (12 steps, 16-unit layers, 64-point batches). The runs that exist only
to be compared weight for weight skip the matplotlib pictures (``no_pictures``), which take most
of a tiny run's time; the pictures never touch the RNGs, and the straight runs shared with the
preset tests do draw them, so a picture that disturbed training would still show up as a
mismatch.
"""
from __future__ import annotations

import contextlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import read_metrics
from ganforge.config import load_run_config, preset_names
from helpers import assert_bitwise_equal, cli, ckpt, differs, without_time, one_error_line

TOY_PRESETS = [p for p in preset_names() if p.startswith(("ring-", "grid-", "mixture1d-"))]
TINY = ["train.batch_size=64", "model.z_dim=4", "model.g_hidden=[16]", "model.d_hidden=[16]",
        "train.progress=false", "train.tensorboard=false", "train.log_every=4",
        "train.sample_every=6", "train.checkpoint_every=6", "train.eval_every=6",
        "train.eval_samples=200", "train.device=cpu"]
STATS = ("d_loss", "g_loss", "d_acc", "d_real", "d_fake", "js_estimate")
CRITIC_STATS = ("d_loss", "g_loss", "d_real", "d_fake", "w_estimate")  # a Wasserstein critic
PENALISED = {"ring-dragan", "ring-wgan-gp", "grid-wgan-gp"}

# name -> (preset, extra overrides) of the runs checked for an exact resume
RESUME = {
    "plain": ("ring-gan", []),
    "dragan": ("ring-dragan", []),  # the penalty draws from the noise generator
    "wgan-gp": ("ring-wgan-gp", []),  # d_steps=5 in the preset
    "wgan-clip": ("ring-gan", ["loss.discriminator=wasserstein", "loss.generator=wasserstein",
                               "optim.name=rmsprop", "optim.clip_d=0.01", "train.d_steps=5"]),
    "unrolled": ("ring-gan", ["train.unroll_steps=2"]),
    "feature-matching": ("ring-gan", ["loss.generator=feature-matching"]),
    "minibatch": ("ring-gan", ["model.minibatch_kernels=4"]),
    "fixed": ("ring-gan", ["data.toy.fixed_size=256"]),  # 4 batches an epoch; split mid-epoch
    "pacgan": ("ring-gan", ["model.pack=4"]),
    "components": ("ring-gan", ["model.g_components=4"]),
    "components-no-info": ("ring-gan", ["model.g_components=4", "loss.info_weight=0.0"]),
    "instance-noise": ("ring-gan", ["loss.instance_noise=0.5", "loss.instance_noise_steps=8"]),
    "pacgan-dragan": ("ring-dragan", ["model.pack=2"]),  # the penalty's norm is per pack
    "pacgan-unrolled": ("ring-gan", ["model.pack=2", "train.unroll_steps=2"]),
}
# straight runs of these are the preset runs themselves (with pictures)
PRESET_RUN = {"plain": "ring-gan", "dragan": "ring-dragan", "wgan-gp": "ring-wgan-gp"}


def tiny(steps: int, *extra: str) -> list[str]:
    return [*TINY, f"train.steps={steps}", *extra]


@contextlib.contextmanager
def no_pictures():
    """Frames, the GIF and the curves become empty files (they are a tiny run's slowest part)."""
    import ganforge.train.loop as loop

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "save_frame", lambda g, d, data, cfg, path, step: path.write_bytes(b""))
        mp.setattr(loop, "make_gif", lambda frames, path: path.write_bytes(b""))
        mp.setattr(loop, "plot_curves", lambda records, path: path.write_bytes(b""))
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """12-step runs, trained once and shared: ``runs(preset)`` for a toy preset (with pictures)
    or ``runs("resume:NAME")`` for a RESUME variant."""
    made = {}
    root = tmp_path_factory.mktemp("toy-runs")

    def get(key: str):
        if key not in made:
            if key.startswith("resume:"):
                name = key.split(":", 1)[1]
                if name in PRESET_RUN:
                    made[key] = get(PRESET_RUN[name])
                    return made[key]
                preset, extra = RESUME[name]
                out = root / name
                with no_pictures():
                    assert cli("train", preset, *tiny(12, *extra), "--out", out) == 0
            else:
                out = root / key
                assert cli("train", key, *tiny(12), "--out", out) == 0
            made[key] = out
        return made[key]
    return get


# ----------------------------------------------------------------------------- every preset

def test_toy_presets_exist():
    assert {"ring-gan", "ring-dragan", "ring-unrolled", "ring-wgan-gp", "grid-gan",
            "mixture1d-gan"} <= set(TOY_PRESETS)
    assert len(TOY_PRESETS) >= 6


@pytest.mark.parametrize("preset", TOY_PRESETS)
def test_every_toy_preset_runs(preset, runs):
    run = runs(preset)
    cfg = load_run_config(run / "config.yaml")
    assert cfg.model.arch == "toy-mlp" and cfg.data.name in ("mixture-1d", "ring", "grid")
    assert cfg.model.g_hidden == [16] and cfg.train.steps == 12  # the overrides took

    with Image.open(run / "samples" / "step_000006.png") as img:
        assert img.format == "PNG" and min(img.size) > 200
    assert sorted(p.name for p in (run / "samples").iterdir()) == \
        ["step_000006.png", "step_000012.png"]
    with Image.open(run / "progress.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 2
    assert (run / "curves.png").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["step_000006", "step_000012"]

    records = read_metrics(run)
    assert [r["step"] for r in records] == [4, 6, 8, 12]
    n_modes = {"ring": 8, "grid": 25, "mixture-1d": 2}[cfg.data.name]
    stats = CRITIC_STATS if cfg.loss.discriminator == "wasserstein" else STATS
    for r in records:
        assert set(stats) <= set(r) and all(np.isfinite(r[k]) for k in stats)
        assert ("js_estimate" in r) == (stats is STATS) and ("w_estimate" in r) != (stats is STATS)
        evaluated = r["step"] in (6, 12)
        assert {"modes", "hq", "kl"} <= set(r) if evaluated else not {"modes", "hq", "kl"} & set(r)
        if evaluated:
            assert isinstance(r["modes"], int) and 0 <= r["modes"] <= n_modes
            assert 0 <= r["hq"] <= 100
            assert r["kl"] is None or 0 <= r["kl"] <= np.log(n_modes) + 1e-9
        assert ("penalty" in r) == (preset in PENALISED), r
        if preset in PENALISED:
            assert np.isfinite(r["penalty"]) and r["penalty"] >= 0


def test_preset_remedies_are_wired(runs):
    """The presets switch on what their names say."""
    assert load_run_config(runs("ring-wgan-gp") / "config.yaml").train.d_steps == 5
    assert load_run_config(runs("ring-unrolled") / "config.yaml").train.unroll_steps == 5
    assert load_run_config(runs("ring-dragan") / "config.yaml").loss.penalty == "dragan"
    assert load_run_config(runs("ring-pacgan") / "config.yaml").model.pack == 4
    mix = load_run_config(runs("ring-pacgan-mix") / "config.yaml")
    assert mix.model.pack == 4 and mix.model.g_components == 8 and mix.loss.info_weight > 0
    assert all("info" in r for r in read_metrics(runs("ring-pacgan-mix")))
    grid_mix = load_run_config(runs("grid-mix") / "config.yaml")
    assert grid_mix.model.g_components == 100 and grid_mix.model.pack == 1
    assert grid_mix.loss.instance_noise > 0 and grid_mix.loss.instance_noise_steps > 0
    assert load_run_config(runs("grid-pacgan") / "config.yaml").model.pack == 4


# ----------------------------------------------------------------------------- exact resume

@pytest.mark.parametrize("name", list(RESUME))
def test_resume_is_bitwise_equal(name, runs, tmp_path):
    # The toy presets decay the learning rate over train.steps, so the split run continues a
    # 12-step run from its step-6 checkpoint (as after a crash or Ctrl-C) rather than raising
    # train.steps (that path is tested on the MNIST presets in test_cli.py).
    preset, extra = RESUME[name]
    full = runs(f"resume:{name}")
    split = tmp_path / name
    shutil.copytree(full, split)
    shutil.rmtree(split / "checkpoints" / "step_000012")
    with no_pictures():
        assert cli("train", "--resume", split) == 0

    for part in ("generator", "discriminator", "optim_g", "optim_d", "state"):
        assert_bitwise_equal(ckpt(full, 12, part), ckpt(split, 12, part))
    assert differs(ckpt(full, 6), ckpt(full, 12))  # training moved the weights
    assert without_time(read_metrics(split)) == without_time(read_metrics(full))
    cfg = load_run_config(split / "config.yaml")
    assert cfg.train.steps == 12
    for override in extra:  # the variant's settings are what the resumed run used
        key, value = override.split("=")
        section, *rest = key.split(".")
        node = getattr(cfg, section)
        for part in rest:
            node = getattr(node, part)
        assert str(node) == value


@pytest.mark.parametrize("preset,losses,estimate,old", [
    ("ring-wgan-gp", [], "w_estimate", {"js_estimate", "d_acc"}),
    ("ring-gan", ["loss.discriminator=hinge", "loss.generator=hinge"], "tv_estimate", set())])
def test_a_window_of_other_statistics_is_dropped_on_resume(runs, tmp_path, preset, losses,
                                                           estimate, old):
    """A checkpoint written before the D loss logged its distance estimate carries a window of
    other sums (a WGAN critic's: d_acc and js_estimate; a hinge D's: no estimate): the resume
    drops it for a fresh one, as for a checkpoint with no window at all, and the weights still
    come out as in the straight run."""
    from safetensors.torch import load_file, save_file

    full = tmp_path / "full"  # no eval record at step 6: the checkpoint's window is open
    with no_pictures():
        assert cli("train", preset, *tiny(12, "train.eval_every=0", *losses), "--out", full) == 0
    resumed = {}
    for kind in ("old-window", "no-window"):
        split = tmp_path / kind
        shutil.copytree(full, split)
        shutil.rmtree(split / "checkpoints" / "step_000012")
        path = split / "checkpoints" / "step_000006" / "state.safetensors"
        state = load_file(path)
        assert state["window.steps"] == 2 and f"window.{estimate}" in state
        assert not {f"window.{k}" for k in old} & set(state)
        sums = state.pop(f"window.{estimate}")
        if kind == "old-window":  # the sums an older ganforge kept for this D loss
            state.update({f"window.{k}": torch.zeros_like(sums) for k in old})
        else:
            state = {k: v for k, v in state.items() if not k.startswith("window.")}
        save_file(state, path)
        with no_pictures():
            assert cli("train", "--resume", split) == 0
        assert_bitwise_equal(ckpt(full, 12), ckpt(split, 12))
        resumed[kind] = without_time(read_metrics(split))
    assert resumed["old-window"] == resumed["no-window"]
    assert all(estimate in r and not old & set(r) for r in resumed["old-window"])


def test_mixture_of_generators_trains_its_classifier(runs):
    """With components G's loss carries Q's cross-entropy, logged as ``info``; Q's weights live
    in G's checkpoint and move only while the term is on."""
    on, off = runs("resume:components"), runs("resume:components-no-info")
    for r in read_metrics(on):
        assert 0 < r["info"] < 2 * np.log(4), r  # cross-entropy over 4 components
    assert all("info" not in r for r in read_metrics(off))
    assert all("info" not in r for r in read_metrics(runs("ring-gan")))
    q = [k for k in ckpt(on, 12) if k.startswith("q.")]
    assert q and all(k in ckpt(off, 12) for k in q)
    assert any(not torch.equal(ckpt(on, 6)[k], ckpt(on, 12)[k]) for k in q)
    assert all(torch.equal(ckpt(off, 6)[k], ckpt(off, 12)[k]) for k in q)
    assert differs(ckpt(on, 12, "discriminator"), ckpt(off, 12, "discriminator"))


def test_weight_clipping_keeps_every_d_weight_in_range(runs):
    run = runs("resume:wgan-clip")
    for step in (6, 12):
        d = ckpt(run, step, "discriminator")
        assert d
        biggest = max(t.abs().max().item() for t in d.values())
        assert biggest <= 0.01
        assert biggest == pytest.approx(0.01)  # the clamp was active, not just small weights
    # RMSprop, not Adam, trained D and G
    assert all(".square_avg" in k or k.endswith(".step") for k in ckpt(run, 12, "optim_d"))
    assert any(".square_avg" in k for k in ckpt(run, 12, "optim_g"))


def test_remedies_change_the_run(runs):
    """Each variant trains differently from the plain ring run with the same seed."""
    plain = ckpt(runs("ring-gan"), 12)
    for name in ("dragan", "wgan-clip", "unrolled", "feature-matching", "fixed", "pacgan",
                 "instance-noise"):
        other = ckpt(runs(f"resume:{name}"), 12)
        assert differs(plain, other), name
    mbd = ckpt(runs("resume:minibatch"), 12, "discriminator")
    assert any(k.endswith(".T") for k in mbd)
    packed = ckpt(runs("resume:pacgan"), 12, "discriminator")
    assert packed["d.blocks.0.0.weight"].shape[1] == 4 * 2  # D reads packs of four 2-D points


def test_unroll_steps_zero_is_the_plain_run(runs, tmp_path):
    run = tmp_path / "k0"
    with no_pictures():
        assert cli("train", "ring-gan", *tiny(12, "train.unroll_steps=0"), "--out", run) == 0
    plain = runs("ring-gan")
    for part in ("generator", "discriminator", "optim_g", "optim_d"):
        assert_bitwise_equal(ckpt(plain, 12, part), ckpt(run, 12, part))
    assert differs(ckpt(plain, 12), ckpt(runs("resume:unrolled"), 12))


# ----------------------------------------------------------------------------- eval

def test_eval_prints_and_writes_eval_json(runs, tmp_path, capsys):
    run = shutil.copytree(runs("ring-gan"), tmp_path / "run")
    capsys.readouterr()
    assert cli("eval", run) == 0
    out = capsys.readouterr().out
    saved = json.loads((run / "eval.json").read_text())
    assert set(saved) == {"step", "ema", "n", "modes", "hq", "kl"}
    assert saved["n"] == 2500
    assert isinstance(saved["modes"], int) and 0 <= saved["modes"] <= 8
    assert 0 <= saved["hq"] <= 100
    assert saved["kl"] is None or saved["kl"] >= 0
    lines = {line[:22].strip(): line[22:].strip() for line in out.splitlines()}
    assert lines["samples"] == "2500" and out.splitlines()[-1] == f"wrote {run / 'eval.json'}"
    assert lines["modes covered"] == f"{saved['modes']} / 8"
    assert lines["high quality (%)"] == f"{saved['hq']:.1f}"
    assert lines["reverse KL"] == ("n/a (no high-quality sample)" if saved["kl"] is None
                                   else f"{saved['kl']:.4f}")
    assert cli("eval", run, "--extractor", "inception") == 2  # no image metric to choose
    assert "--extractor chooses image metrics; this run gets modes" in one_error_line(capsys)


def test_eval_json_matches_the_training_metrics(runs, tmp_path, capsys):
    """``eval --n 200`` scores the newest checkpoint with the noise the loop used at step 12."""
    run = shutil.copytree(runs("grid-gan"), tmp_path / "run")
    capsys.readouterr()
    assert cli("eval", run, "--n", 200, "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run / "eval.json").read_text())
    assert printed["n"] == 200 and 0 <= printed["modes"] <= 25
    last = read_metrics(run)[-1]
    assert last["step"] == 12
    assert {k: printed[k] for k in ("modes", "hq", "kl")} == \
        {k: last[k] for k in ("modes", "hq", "kl")}
    # an older checkpoint: the step-6 numbers
    assert cli("eval", run, "--n", 200, "--step", 6, "--json") == 0
    at6 = json.loads(capsys.readouterr().out)
    six = next(r for r in read_metrics(run) if r["step"] == 6)
    assert {k: at6[k] for k in ("modes", "hq", "kl")} == {k: six[k] for k in ("modes", "hq", "kl")}


def test_eval_of_an_rgb_image_run_is_one_line(tmp_path, capsys):
    """1-channel image runs are scored (tests/test_eval_cli.py); 3-channel ones default to
    InceptionV3, whose weights cannot be fetched offline: one line, no eval.json."""
    from conftest import write_png_folder

    images = write_png_folder(tmp_path / "images", n=8, size=(12, 12))
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", "data.name=image-folder", f"data.root={images}",
               "data.channels=3", "data.image_size=12",
               "model.g_hidden=[8]", "model.d_hidden=[8]", "model.z_dim=4",
               "train.batch_size=4", "train.steps=1", "train.progress=false",
               "train.tensorboard=false", "train.device=cpu", "--out", run) == 0
    capsys.readouterr()
    assert cli("eval", run) == 2
    line = one_error_line(capsys)
    assert "InceptionV3" in line and "--inception-weights" in line
    assert not (run / "eval.json").exists()


def test_eval_bad_n(runs, capsys):
    assert cli("eval", runs("ring-gan"), "--n", 0) == 2
    assert "--n" in one_error_line(capsys)
    assert cli("eval", runs("ring-gan"), "--metrics", "fid") == 2  # image metrics only
    assert "--metrics chooses image metrics" in one_error_line(capsys)


# ----------------------------------------------------------------------------- sample

def test_sample_ring_npy_and_png(runs, tmp_path, capsys):
    run = runs("ring-gan")
    assert cli("sample", run, "--n", 2500, "--out", tmp_path / "s.npy") == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (2500, 2) and s.dtype == np.float32
    assert np.isfinite(s).all() and s.std() > 0
    assert "2500 samples of shape (2,)" in capsys.readouterr().out
    # the same seed gives the same points, another seed others
    assert cli("sample", run, "--n", 2500, "--out", tmp_path / "t.npy") == 0
    assert np.array_equal(s, np.load(tmp_path / "t.npy"))
    assert cli("sample", run, "--n", 2500, "--seed", 1, "--out", tmp_path / "u.npy") == 0
    assert not np.allclose(s, np.load(tmp_path / "u.npy"))

    assert cli("sample", run, "--n", 500, "--out", tmp_path / "sub" / "s.png") == 0
    with Image.open(tmp_path / "sub" / "s.png") as img:
        assert img.format == "PNG" and min(img.size) > 300


def test_sample_mixture_1d(runs, tmp_path):
    run = runs("mixture1d-gan")
    assert cli("sample", run, "--n", 300, "--out", tmp_path / "m.npy") == 0
    m = np.load(tmp_path / "m.npy")
    assert m.shape == (300, 1) and m.dtype == np.float32
    assert cli("sample", run, "--n", 300, "--out", tmp_path / "m.png") == 0
    with Image.open(tmp_path / "m.png") as img:
        assert img.format == "PNG"


def test_sample_toy_with_label_is_one_line(runs, tmp_path, capsys):
    assert cli("sample", runs("ring-gan"), "--label", 1, "--out", tmp_path / "x.npy") == 2
    assert "label" in one_error_line(capsys)
    assert not (tmp_path / "x.npy").exists()


# ----------------------------------------------------------------------------- theory

def test_theory_command(tmp_path, monkeypatch, capsys):
    """The full lab trains D for 600 steps (~30-50 s here); 30 steps exercise the same path."""
    import functools

    import ganforge.theory as theory

    monkeypatch.setattr(theory, "write_theory", functools.partial(theory.write_theory, steps=30))
    out = tmp_path / "theory"
    assert cli("theory", "--out", out) == 0
    lines = capsys.readouterr().out.splitlines()
    a = next(line for line in lines if line.startswith("(a) "))
    b = next(line for line in lines if line.startswith("(b) "))
    assert "D*" in a and "max |error|" in a and "tolerance 0.05" in a
    assert "2 JS - 2 log 2" in b and "-1.386294" in b  # V at p_g = p_data is -2 log 2
    assert any(line.startswith("(c) ") for line in lines)
    for name in ("optimal_d.png", "value_vs_js.png", "generator_losses.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG"
    numbers = json.loads((out / "theory.json").read_text())
    assert {"optimal_d", "value_vs_js", "generator_losses"} <= set(numbers)
    assert numbers["optimal_d"]["steps"] == 30
    assert numbers["value_vs_js"]["passed"] is True


@pytest.mark.parametrize("preset", ["ring-gan", "mixture1d-gan"])
def test_a_toy_sample_picture_counts_the_samples_outside_its_window(preset, tmp_path,
                                                                    monkeypatch):
    import ganforge.train.watch as watch
    from ganforge.config import load_config
    from ganforge.data import load_data

    data = load_data(load_config(preset))
    lo, hi = watch.toy_bounds(data)
    samples = np.zeros((10, data.dim), np.float32)
    samples[:3, -1] = [lo - 1, hi + 1, hi + 100]  # three outside; the rest at the origin
    legends = []
    monkeypatch.setattr(watch, "save_figure", lambda fig, path, **kw: legends.append(
        [t.get_text() for t in fig.axes[0].get_legend().get_texts()]))
    watch.save_toy_samples(samples, data, tmp_path / "s.png")
    watch.save_toy_samples(samples[3:], data, tmp_path / "s.png")
    assert legends[0][-1] == "10 samples (3 outside the plot)"
    assert legends[1][-1] == "7 samples"
