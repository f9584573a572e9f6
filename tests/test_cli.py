"""End to end through the command line, in-process (``ganforge.cli.main``) and once or twice as
a real subprocess: the run folder, bitwise resume, seeded runs, bad inputs that must leave an
existing run untouched, sampling, and a few steps of every preset. Tiny settings throughout."""
from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import read_metrics, snapshot, write_png_folder
from ganforge.config import load_config, load_run_config
from ganforge.sampling import fixed_inputs, generate
from ganforge.train.checkpoint import load_generator
from helpers import assert_bitwise_equal, cli, ckpt as ckpt_file, differs, without_time, one_error_line

STATS = ("step", "d_loss", "g_loss", "d_acc", "d_real", "d_fake", "js_estimate")
# Per preset, extra settings for the resume tests: the demo run also writes TensorBoard events
# (which must not change the numbers), cdcgan-mnist is conditional with g_steps=2 and
# z ~ U(-1, 1), gan-mnist is the MLP.
RESUME_PRESETS = {"demo": ["train.tensorboard=true"], "cdcgan-mnist": [], "gan-mnist": []}


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny):
    """Runs of 40 steps straight through, trained once per preset and shared by the module."""
    runs = {}

    def get(preset: str):
        if preset not in runs:
            out = tmp_path_factory.mktemp("straight") / preset
            assert cli("train", preset, *tiny(40, *RESUME_PRESETS[preset]), "--out", out) == 0
            runs[preset] = out
        return runs[preset]
    return get


@pytest.fixture
def demo_copy(straight, tmp_path):
    """A private copy of the finished 40-step demo run (for tests that must not touch it)."""
    return shutil.copytree(straight("demo"), tmp_path / "run")


# ----------------------------------------------------------------------------- the run folder

def test_run_folder_contents(straight, tiny):
    run = straight("demo")
    assert load_run_config(run / "config.yaml") == load_config(
        "demo", tiny(40, *RESUME_PRESETS["demo"]))

    records = read_metrics(run)
    assert [r["step"] for r in records] == list(range(5, 41, 5))
    for r in records:
        assert set(STATS) <= set(r)
        assert all(math.isfinite(r[k]) for k in STATS)
        assert 0 <= r["d_acc"] <= 1 and 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1
        assert r["js_estimate"] <= math.log(2)
        assert r["d_loss"] > 0

    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == [f"step_{s:06d}.png" for s in (10, 20, 30, 40)]
    grid = Image.open(run / "samples" / "step_000040.png")
    assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # 10x10 grid of 28 px with 2 px padding

    with Image.open(run / "progress.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 4
    with Image.open(run / "curves.png") as curves:
        assert curves.format == "PNG" and curves.width > 500

    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == [f"step_{s:06d}" for s in (10, 20, 30, 40)]
    for name in ckpts:
        for f in ("generator.safetensors", "discriminator.safetensors"):
            assert (run / "checkpoints" / name / f).is_file()
    # the weights moved during training
    assert differs(ckpt_file(run, 10), ckpt_file(run, 40))

    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert {"d_loss", "g_loss", "d_acc", "js_estimate"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("d_loss")] == list(range(5, 41, 5))


def test_no_tensorboard_when_off(straight):
    assert not (straight("gan-mnist") / "tensorboard").exists()


def test_default_out_is_runs_preset(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("train", "demo", *tiny(2)) == 0
    assert (tmp_path / "runs" / "demo" / "checkpoints" / "step_000002").is_dir()


def test_overwrite_replaces_the_run(demo_copy, tiny):
    assert cli("train", "demo", *tiny(2), "--out", demo_copy, "--overwrite") == 0
    assert sorted(p.name for p in (demo_copy / "checkpoints").iterdir()) == ["step_000002"]
    assert [r["step"] for r in read_metrics(demo_copy)] == [2]
    assert not (demo_copy / "tensorboard").exists()


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize("preset", list(RESUME_PRESETS))
def test_resume_is_bitwise_equal_to_a_straight_run(preset, straight, tiny, tmp_path):
    split = tmp_path / preset
    assert cli("train", preset, *tiny(20, *RESUME_PRESETS[preset]), "--out", split) == 0
    assert sorted(p.name for p in (split / "checkpoints").iterdir()) == \
        ["step_000010", "step_000020"]
    assert cli("train", "--resume", split, "train.steps=40") == 0
    full = straight(preset)

    for name in ("generator", "discriminator", "optim_g", "optim_d", "state"):
        assert_bitwise_equal(ckpt_file(full, 40, name), ckpt_file(split, 40, name))
    assert differs(ckpt_file(full, 20), ckpt_file(full, 40))
    assert without_time(read_metrics(split)) == without_time(read_metrics(full))
    assert (split / "samples" / "step_000040.png").read_bytes() == \
        (full / "samples" / "step_000040.png").read_bytes()
    assert load_run_config(split / "config.yaml").train.steps == 40
    if preset == "demo":
        assert list((split / "tensorboard").glob("events.out.tfevents.*"))
    if preset == "cdcgan-mnist":
        cfg = load_run_config(split / "config.yaml")
        assert cfg.model.conditional and cfg.train.g_steps == 2 and cfg.model.z_dist == "uniform"


def test_resume_from_an_older_checkpoint_drops_later_metrics(straight, tiny, tmp_path):
    """A crash after logging step 20 but before its checkpoint: resuming from step 10 must log
    steps 11..20 again once, and still match the straight run bit for bit."""
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(20), "--out", run) == 0
    shutil.rmtree(run / "checkpoints" / "step_000020")
    assert cli("train", "--resume", run, "train.steps=40") == 0
    full = straight("gan-mnist")
    assert [r["step"] for r in read_metrics(run)] == list(range(5, 41, 5))
    assert without_time(read_metrics(run)) == without_time(read_metrics(full))
    assert_bitwise_equal(ckpt_file(full, 40), ckpt_file(run, 40))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C, a job scheduler
def test_ctrl_c_checkpoints_and_resume_continues_exactly(signum, straight, tiny, tmp_path,
                                                        monkeypatch, capsys):
    """The first Ctrl-C (or SIGTERM) stops at the end of the current step (13 here, between
    checkpoints) and checkpoints it; resuming from there ends bit for bit where the
    uninterrupted run does."""
    import ganforge.train.loop as loop

    real_stats, calls = loop.discriminator_stats, {"n": 0}
    before = signal.getsignal(signum)

    def stats_then_ctrl_c(*args):
        calls["n"] += 1
        if calls["n"] == 13:
            # only with the loop's own handler installed; the default one would end pytest
            assert signal.getsignal(signum) not in (before, signal.SIG_DFL)
            signal.raise_signal(signum)
        return real_stats(*args)

    monkeypatch.setattr(loop, "discriminator_stats", stats_then_ctrl_c)
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(40), "--out", run) == 0
    assert signal.getsignal(signum) == before  # the handler is put back
    assert "interrupted: checkpoint saved at step 13" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["step_000010", "step_000013"]
    assert read_metrics(run)[-1]["step"] == 13  # the stop closes the logging window early
    monkeypatch.undo()
    assert cli("train", "--resume", run, "train.steps=40") == 0
    assert_bitwise_equal(ckpt_file(straight("gan-mnist"), 40), ckpt_file(run, 40))
    # the resume carries on the window its checkpoint held: the metrics of a straight run;
    # and the grid drawn at the stop goes, so the GIF is a straight run's too
    full = straight("gan-mnist")
    assert without_time(read_metrics(run)) == without_time(read_metrics(full))
    assert sorted(p.name for p in (run / "samples").iterdir()) == \
        sorted(p.name for p in (full / "samples").iterdir())
    assert (run / "progress.gif").read_bytes() == (full / "progress.gif").read_bytes()


@pytest.mark.parametrize("first, cut", [
    (["train.steps=13"], []),  # a shorter run, then continued: its last record closed early
    (["train.steps=20", "train.checkpoint_every=7"], ["step_000014", "step_000020"]),  # a crash
])
def test_resume_between_logging_steps_logs_what_a_straight_run_logs(first, cut, straight, tiny,
                                                                     tmp_path):
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(40), *first, "--out", run) == 0
    for name in cut:
        shutil.rmtree(run / "checkpoints" / name)
    assert cli("train", "--resume", run, "train.steps=40") == 0
    assert [r["step"] for r in read_metrics(run)] == list(range(5, 41, 5))
    assert without_time(read_metrics(run)) == without_time(read_metrics(straight("gan-mnist")))
    assert [list(r) for r in read_metrics(run)] == [list(r) for r in read_metrics(
        straight("gan-mnist"))]  # the keys in the same order too
    times = [r["time"] for r in read_metrics(run)]  # the training clock runs on over the resume
    assert times == sorted(times) and times[0] > 0


def test_a_resume_on_other_versions_says_so(demo_copy, capsys):
    import ganforge

    state = demo_copy / "checkpoints" / "step_000040" / "state.json"
    meta = json.loads(state.read_text())
    assert meta["versions"] == {"ganforge": ganforge.__version__, "torch": torch.__version__,
                                "python": ".".join(map(str, sys.version_info[:3]))}
    meta["versions"]["torch"] = "2.4.0"
    state.write_text(json.dumps(meta))
    assert cli("train", "--resume", demo_copy, "train.steps=42") == 0
    assert (f"note: step_000040 was written by other versions (torch 2.4.0 -> "
            f"{torch.__version__}); the arithmetic can differ") in capsys.readouterr().out
    assert cli("train", "--resume", demo_copy, "train.steps=44") == 0  # written here: no note
    assert "note:" not in capsys.readouterr().out


def test_version(capsys):
    import ganforge

    with pytest.raises(SystemExit) as exit_:
        cli("--version")
    assert exit_.value.code == 0 and capsys.readouterr().out == f"ganforge {ganforge.__version__}\n"


def test_a_full_disk_stops_with_one_line_and_the_run_resumes_exactly(straight, tiny, tmp_path,
                                                                      monkeypatch, capsys):
    """The disk fills up while step 20's checkpoint is written: one line naming the checkpoint
    to go on from, no half-written checkpoint left behind, and the resumed run ends as a straight
    run does."""
    import errno

    import ganforge.train.checkpoint as checkpoint

    real = checkpoint.save_tensors

    def save_tensors(tensors, path, metadata=None):
        if "step_000020" in str(path) and path.name == "discriminator.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, path, metadata)

    monkeypatch.setattr(checkpoint, "save_tensors", save_tensors)
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(40), "--out", run) == 2
    line = one_error_line(capsys)
    assert line == (f"ganforge: error: no space left on device; '{run}' is intact up to its "
                    f"checkpoint step_000010: free some space, then go on with "
                    f"`ganforge train --resume {run}`")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000010"]
    monkeypatch.undo()
    assert cli("train", "--resume", run) == 0
    full = straight("gan-mnist")
    assert without_time(read_metrics(run)) == without_time(read_metrics(full))
    assert_bitwise_equal(ckpt_file(full, 40), ckpt_file(run, 40))


@pytest.mark.parametrize("log_every,seen_in", [(5, "g_loss"), (50, "G's weights")])
def test_a_diverging_run_stops_with_one_line_and_writes_no_broken_checkpoint(
        log_every, seen_in, tiny, tmp_path, monkeypatch, capsys):
    """G's loss turns NaN from its 13th call: the next record (step 15) or, between records,
    the next checkpoint (step 20) stops the run with one line; the checkpoint it names is the
    last finite one, and the resume it advises, with lower learning rates, trains on."""
    from ganforge.losses import G_LOSSES

    real, calls = G_LOSSES.get("non-saturating"), []

    def nan_from_the_13th_call(fake_logits):
        calls.append(1)
        return real(fake_logits) * (float("nan") if len(calls) >= 13 else 1.0)

    monkeypatch.setitem(G_LOSSES._items, "non-saturating", nan_from_the_13th_call)
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(40, f"train.log_every={log_every}"), "--out", run) == 2
    line = one_error_line(capsys)
    at = 15 if log_every == 5 else 20
    assert line.startswith(f"ganforge: error: training diverged at step {at}: ")
    assert seen_in in line.split(";")[0] and "no longer finite" in line
    assert line.endswith(f"'{run}' is intact up to its checkpoint step_000010: lower the learning "
                         f"rates, then go on with `ganforge train --resume {run} "
                         "optim.lr_g=5e-05 optim.lr_d=5e-05`")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000010"]
    assert all(math.isfinite(v) for r in read_metrics(run) for v in r.values())
    monkeypatch.undo()
    assert cli("train", "--resume", run, "optim.lr_g=5e-05", "optim.lr_d=5e-05") == 0
    assert read_metrics(run)[-1]["step"] == 40


def test_a_checkpoint_never_carries_non_finite_buffers_or_window(tiny, tmp_path, monkeypatch,
                                                                   capsys):
    """What a checkpoint holds besides the weights is checked too: batch norm's running
    statistics overflow at a huge learning rate with the weights still finite, and a loss that
    is inf for one step (its gradient finite) sits in the window a mid-window checkpoint
    carries. Either would make every later load or resume fail."""
    from ganforge.losses import G_LOSSES

    run = tmp_path / "bn"
    assert cli("train", "demo", *tiny(12, "train.log_every=1000", "train.checkpoint_every=4",
                                      "optim.lr_g=1e8", "optim.lr_d=1e8"), "--out", run) == 2
    assert "weights" in one_error_line(capsys).split(";")[0]
    kept = (run / "checkpoints").iterdir() if (run / "checkpoints").exists() else []
    for step in (p.name for p in kept):  # what is left loads
        assert cli("sample", run, "--step", int(step[5:]), "--out", tmp_path / "s.png") == 0
    real, calls = G_LOSSES.get("non-saturating"), []

    def inf_once(fake_logits):
        calls.append(1)
        return real(fake_logits) + (float("inf") if len(calls) == 12 else 0.0)

    monkeypatch.setitem(G_LOSSES._items, "non-saturating", inf_once)
    run = tmp_path / "window"
    assert cli("train", "demo", *tiny(30, "train.log_every=20", "train.checkpoint_every=15"),
               "--out", run) == 2
    assert one_error_line(capsys).startswith(
        "ganforge: error: training diverged at step 15: g_loss is no longer finite")


def test_a_run_that_diverges_before_its_first_checkpoint_says_to_train_again(
        tiny, tmp_path, monkeypatch, capsys):
    from ganforge.losses import G_LOSSES

    monkeypatch.setitem(G_LOSSES._items, "non-saturating", lambda logits: logits.mean() * 1e39)
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(40), "--out", run) == 2
    assert one_error_line(capsys).endswith(
        f"before '{run}' had a checkpoint; lower the learning rates and train again with "
        "--overwrite")
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())


def test_a_full_disk_at_the_pictures_leaves_none_cut_off_and_resume_draws_them(
        tiny, tmp_path, monkeypatch, capsys):
    """The disk fills after the last checkpoint, while progress.gif is written: no half GIF is
    left, and the advised --resume, with nothing left to train, draws the pictures."""
    import errno

    from PIL import Image

    real_save = Image.Image.save

    def gif_on_a_full_disk(img, fp, *args, **kwargs):
        if str(fp).endswith(".gif"):
            Path(fp).write_bytes(b"GIF89a")  # the first bytes made it, then the disk was full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(img, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", gif_on_a_full_disk)
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(10), "--out", run) == 2
    assert "is intact up to its checkpoint step_000010" in one_error_line(capsys)
    assert not (run / "progress.gif").exists() and not (run / "curves.png").exists()
    assert sorted(p.name for p in run.iterdir()) == [  # no temporary file left either
        "checkpoints", "config.yaml", "metrics.jsonl", "samples"]
    monkeypatch.undo()
    before = snapshot(run)
    assert cli("train", "--resume", run) == 0
    assert "nothing to train; progress.gif and curves.png redrawn" in capsys.readouterr().out
    assert (run / "progress.gif").stat().st_size > 100 and (run / "curves.png").is_file()
    assert {k: v for k, v in snapshot(run).items() if k in before} == before  # nothing else


def test_a_leftover_temporary_file_does_not_block_overwrite(demo_copy, tiny):
    (demo_copy / ".config.tmp4242.yaml").write_text("kill -9 while config.yaml was written")
    assert cli("train", "demo", *tiny(2), "--out", demo_copy, "--overwrite") == 0


def test_eval_prints_its_figures_before_a_full_disk_stops_eval_json(demo_copy, monkeypatch,
                                                                      capsys):
    import errno

    import ganforge.cli

    assert cli("eval", demo_copy, "--n", 50) == 0
    saved = (demo_copy / "eval.json").read_text()
    capsys.readouterr()

    def no_space(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ganforge.cli, "write_text", no_space)
    assert cli("eval", demo_copy, "--n", 60) == 2
    out, err = capsys.readouterr()
    assert "FID" in out and "60" in out  # the figures were printed
    assert err == (f"ganforge: error: no space left on device (writing {demo_copy}/eval.json); "
                   "free some space and run the command again\n")
    assert (demo_copy / "eval.json").read_text() == saved  # the last one is kept whole


def test_a_full_disk_before_the_first_checkpoint_says_to_train_again(tiny, tmp_path,
                                                                    monkeypatch, capsys):
    import errno

    import ganforge.train.checkpoint as checkpoint

    def no_space(tensors, path, metadata=None):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(path))

    monkeypatch.setattr(checkpoint, "save_tensors", no_space)
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(10), "--out", run) == 2
    assert one_error_line(capsys) == (
        f"ganforge: error: no space left on device (writing {run}/checkpoints/.step_000010.tmp/"
        f"generator.safetensors) before '{run}' had a checkpoint; free some space and train "
        f"again with --overwrite")
    assert not list((run / "checkpoints").iterdir())
    monkeypatch.undo()
    assert cli("train", "gan-mnist", *tiny(10), "--out", run, "--overwrite") == 0


def test_a_full_disk_in_any_command_is_one_line(dcgan, tmp_path, monkeypatch, capsys):
    import errno

    real_write = Path.write_bytes

    def no_space(path, data):
        real_write(path, data[:6])  # the first bytes made it
        raise OSError(errno.ENOSPC, "No space left on device")  # a short write names no file

    monkeypatch.setattr(Path, "write_bytes", no_space)
    out = tmp_path / "s.npy"
    assert cli("sample", dcgan, "--n", 4, "--out", out) == 2
    assert one_error_line(capsys) == (f"ganforge: error: no space left on device (writing {out}); "
                                      "free some space and run the command again")
    assert list(tmp_path.iterdir()) == []  # no cut-off file, no temporary one


def test_a_metrics_line_cut_off_by_a_crash_is_dropped_on_resume(straight, tiny, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(20), "--out", run) == 0
    shutil.rmtree(run / "checkpoints" / "step_000020")  # killed while it wrote step 25's record
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 25, "d_loss": 0.5')
    from ganforge.viz.plots import read_metrics as read_run_metrics

    assert [r["step"] for r in read_run_metrics(run / "metrics.jsonl")] == [5, 10, 15, 20]
    assert cli("train", "--resume", run, "train.steps=40") == 0
    assert without_time(read_metrics(run)) == without_time(read_metrics(straight("gan-mnist")))


def test_a_checkpoint_without_a_logging_window_still_resumes(tiny, tmp_path):
    """Checkpoints written before the window and the clock were saved: the record the stop
    wrote stays, the resumed run starts a fresh window, and its clock goes on from that record."""
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(13), "--out", run) == 0
    path = run / "checkpoints" / "step_000013" / "state.safetensors"
    state = load_file(path)
    assert int(state["window.steps"]) == 3 and "window.d_loss" in state
    save_file({k: v for k, v in state.items() if not k.startswith(("window.", "clock."))}, path)
    assert cli("train", "--resume", run, "train.steps=20") == 0
    assert [r["step"] for r in read_metrics(run)] == [5, 10, 13, 15, 20]
    times = [r["time"] for r in read_metrics(run)]
    assert times == sorted(times)


def test_seeded_runs(tiny, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert cli("train", "demo", *tiny(10, f"train.seed={seed}"), "--out", tmp_path / name) == 0
    a, b, c = (ckpt_file(tmp_path / n, 10) for n in "abc")
    assert_bitwise_equal(a, b)
    assert_bitwise_equal(ckpt_file(tmp_path / "a", 10, "discriminator"),
                         ckpt_file(tmp_path / "b", 10, "discriminator"))
    assert without_time(read_metrics(tmp_path / "a")) == without_time(read_metrics(tmp_path / "b"))
    assert differs(a, c)


@pytest.mark.parametrize("preset, trained, override", [
    ("demo", [], "data.limit=64"),  # another number of images than the data order shuffles
    ("demo", [], "optim.name=rmsprop"),  # RMSprop given Adam's moments
    ("ring-gan", [], "data.toy.fixed_size=128"),  # a fixed set where fresh samples were drawn
    ("ring-gan", ["data.toy.fixed_size=128"], "data.toy.fixed_size=null"),
    ("ring-gan", [], "data.name=grid"),  # other data of the same shapes
])
def test_resume_overrides_that_do_not_fit_the_checkpoint_change_nothing(
        preset, trained, override, tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", preset, *tiny(10), *trained, "model.g_hidden=[16]",
               "model.d_hidden=[16]", "--out", run) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert cli("train", "--resume", run, "train.steps=20", override) == 2
    line = one_error_line(capsys)
    assert any(w in line for w in ("data order does not fit", "another optimiser",
                                   "is not this run's data (ring)")), line
    assert snapshot(run) == before


def test_resume_applies_learning_rate_and_beta_overrides(tiny, tmp_path):
    """The optimisers' settings come from the (overridden) config, their moments from the
    checkpoint; without overrides the settings are the saved ones, so resume stays exact."""
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(10), "--out", run) == 0
    assert cli("train", "--resume", run, "train.steps=20", "optim.lr_g=0.05",
               "optim.beta1=0.9") == 0
    groups = json.loads((run / "checkpoints" / "step_000020" / "state.json").read_text())
    g_group, d_group = groups["param_groups"]["optim_g"][0], groups["param_groups"]["optim_d"][0]
    assert g_group["lr"] == 0.05 and g_group["betas"] == [0.9, 0.999]
    assert d_group["lr"] == 2e-4 and d_group["betas"] == [0.9, 0.999]


def test_resume_from_an_older_checkpoint_to_fewer_steps_drops_later_grids(tiny, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(30), "--out", run) == 0
    for step in (20, 30):
        shutil.rmtree(run / "checkpoints" / f"step_{step:06d}")
    assert cli("train", "--resume", run, "train.steps=25") == 0
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_000010.png", "step_000020.png", "step_000025.png"]
    assert read_metrics(run)[-1]["step"] == 25


def test_a_resume_says_what_it_changes_and_mends_a_hand_edited_config(demo_copy, capsys):
    run = demo_copy
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("  steps: 40\n", "  steps: -3\n"))
    assert cli("train", "--resume", run) == 2  # the file's own value, and the file named
    assert one_error_line(capsys) == (f"ganforge: error: {run / 'config.yaml'}: train.steps=-3 "
                                      "is out of range; it must be >= 1")
    assert cli("train", "--resume", run, "train.steps=42", "loss.generator=minimax") == 0
    assert (f"changed on resume from step 40: loss.generator non-saturating -> minimax, "
            "train.steps -3 -> 42\n") in capsys.readouterr().out
    assert load_run_config(run / "config.yaml").loss.generator == "minimax"


def test_a_resume_reads_config_yaml_as_the_config_does_and_mends_it_at_the_last_step(demo_copy,
                                                                                     capsys):
    run = demo_copy
    text = (run / "config.yaml").read_text()
    assert "  lr_g: 0.0002\n" in text and "  pack: 1\n" in text
    (run / "config.yaml").write_text(text.replace("  lr_g: 0.0002\n", "  lr_g: 2e-4\n"))
    assert cli("train", "--resume", run) == 0  # 2e-4 is the same number: no change, no refusal
    assert "changed on resume" not in capsys.readouterr().out
    (run / "config.yaml").write_text(text.replace("  pack: 1\n", "  pack: 0\n"))
    assert cli("train", "--resume", run, "train.steps=50") == 2  # another key: the file named
    assert one_error_line(capsys) == (f"ganforge: error: {run / 'config.yaml'}: model.pack=0 is "
                                      "out of range; it must be >= 1")
    assert cli("train", "--resume", run, "model.pack=1", "train.progress=true") == 0
    assert ("config.yaml mended: model.pack 0 -> 1, train.progress false -> true"
            in capsys.readouterr().out)
    assert load_run_config(run / "config.yaml").model.pack == 1


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")
def test_a_run_just_started_is_being_trained_not_without_checkpoints(demo_copy, tmp_path,
                                                                      capsys):
    """A resume of a run whose trainer holds the folder before its first checkpoint: the
    folder is busy (it said 'no checkpoint in ...', as if the run were broken)."""
    import fcntl
    import os

    run = tmp_path / "started"
    run.mkdir()
    (run / "config.yaml").write_text((demo_copy / "config.yaml").read_text())
    fd = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert cli("train", "--resume", run, "train.steps=42") == 2
        assert "is being trained by another process" in one_error_line(capsys)
    finally:
        os.close(fd)
    assert cli("train", "--resume", run, "train.steps=42") == 2  # unlocked: what it lacks
    assert "no checkpoint in" in one_error_line(capsys)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")
def test_a_folder_being_trained_is_not_trained_twice(demo_copy, tiny, tmp_path, monkeypatch,
                                                     capsys):
    """A second train --resume or --overwrite of a folder another process trains is refused
    before anything changes; the run holds its folder's lock while it trains."""
    import fcntl
    import os

    import ganforge.train.loop as loop

    run = demo_copy
    before = snapshot(run)
    fd = os.open(run, os.O_RDONLY)  # as the other process's train holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for args in (["--resume", run, "train.steps=42"],
                     ["demo", *tiny(2), "--out", run, "--overwrite"]):
            assert cli("train", *args) == 2
            assert one_error_line(capsys) == (f"ganforge: error: '{run}' is being trained by "
                                              "another process; wait for it to end (or stop it), "
                                              "then run this again")
        assert snapshot(run) == before
    finally:
        os.close(fd)
    held, real_stats = [], loop.discriminator_stats

    def stats_and_try_the_lock(*args):
        other = os.open(tmp_path / "new", os.O_RDONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(other)
        return real_stats(*args)

    monkeypatch.setattr(loop, "discriminator_stats", stats_and_try_the_lock)
    assert cli("train", "demo", *tiny(2), "--out", tmp_path / "new") == 0
    assert held == [True, True]
    monkeypatch.undo()
    assert cli("train", "--resume", tmp_path / "new", "train.steps=3") == 0  # released
    for extra in ([], ["--overwrite"]):  # a folder that exists, empty: locked once, not twice
        (tmp_path / "empty").mkdir()
        assert cli("train", "demo", *tiny(2), "--out", tmp_path / "empty", *extra) == 0
        shutil.rmtree(tmp_path / "empty")


def test_overwrite_of_a_run_holding_other_files_says_so(demo_copy, tiny, capsys):
    run = demo_copy
    (run / "distance_estimates.png").write_bytes(b"ganforge theory --out into the run")
    before = snapshot(run)
    assert cli("train", "demo", *tiny(2), "--out", run, "--overwrite") == 2
    assert one_error_line(capsys) == (f"ganforge: error: run folder '{run}' also holds files a "
                                      "run does not write (distance_estimates.png); --overwrite "
                                      "would delete them: move them out, or choose another --out")
    assert snapshot(run) == before


def test_a_damaged_newest_checkpoint_names_the_one_before_it(demo_copy, capsys):
    run = demo_copy
    newest = run / "checkpoints" / "step_000040"
    (newest / "generator.safetensors").write_bytes(b"cut off")
    before = snapshot(run)
    assert cli("train", "--resume", run, "train.steps=50") == 2
    line = one_error_line(capsys)
    assert line.startswith(f"ganforge: error: cannot read '{newest / 'generator.safetensors'}'")
    assert line.endswith("; to resume from the checkpoint before it, step_000030, move "
                         "step_000040 out of checkpoints/")
    assert snapshot(run) == before
    shutil.move(newest, run / "step_000040")
    assert cli("train", "--resume", run, "train.steps=50") == 0
    assert "steps 30 -> 50" in capsys.readouterr().out


def test_ctrl_c_while_the_pictures_are_drawn_still_finishes_them(tiny, tmp_path, monkeypatch,
                                                                 capsys):
    import ganforge.train.loop as loop

    real_gif = loop.make_gif

    def ctrl_c_then_gif(*args):
        signal.raise_signal(signal.SIGINT)  # the loop's handler only notes it
        return real_gif(*args)

    monkeypatch.setattr(loop, "make_gif", ctrl_c_then_gif)
    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(10), "--out", run) == 0
    assert (run / "progress.gif").is_file() and (run / "curves.png").is_file()
    assert "done: 10 steps" in capsys.readouterr().out


def test_ctrl_c_while_a_resume_rewrites_the_run_folder_waits_for_a_step(straight, tiny, tmp_path,
                                                                      monkeypatch, capsys):
    """A Ctrl-C as a resume starts rewriting config.yaml and metrics.jsonl does not leave them
    half-changed: the run trains one step, checkpoints it and stops, and goes on exactly."""
    import ganforge.train.loop as loop

    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(13), "--out", run) == 0
    real_truncate = loop._truncate_run

    def ctrl_c_then_truncate(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # armed by now: only noted
        return real_truncate(*args, **kwargs)

    monkeypatch.setattr(loop, "_truncate_run", ctrl_c_then_truncate)
    assert cli("train", "--resume", run, "train.steps=40") == 0
    assert "interrupted: checkpoint saved at step 14" in capsys.readouterr().out
    assert read_metrics(run)[-1]["step"] == 14
    monkeypatch.undo()
    assert cli("train", "--resume", run, "train.steps=40") == 0
    full = straight("gan-mnist")
    assert_bitwise_equal(ckpt_file(full, 40), ckpt_file(run, 40))
    assert without_time(read_metrics(run)) == without_time(read_metrics(full))


def test_ctrl_c_while_inputs_are_checked_stops_at_once_and_changes_nothing(tiny, tmp_path,
                                                                         monkeypatch, capsys):
    import ganforge.train.loop as loop

    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(10), "--out", run) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    real_load = loop.load_data

    def ctrl_c_then_load(cfg):
        signal.raise_signal(signal.SIGINT)
        return real_load(cfg)

    monkeypatch.setattr(loop, "load_data", ctrl_c_then_load)
    assert cli("train", "--resume", run, "train.steps=20", "loss.generator=minimax") == 130
    assert "ganforge: interrupted" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert cli("train", "demo", *tiny(10), "--out", tmp_path / "new") == 130
    assert not (tmp_path / "new").exists()


def test_loading_the_classifier_leaves_the_global_rng_alone(monkeypatch):
    from ganforge.metrics import classifier

    monkeypatch.setattr(classifier, "_LOADED", {})
    state = torch.get_rng_state()
    classifier.load_classifier()
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- bad inputs


BAD_TRAIN = {
    # name: (argv after "train"; RUN is the existing run, EMPTY a run folder with no checkpoint,
    #        BARE a folder with no config.yaml, FILE a plain file, MISSING a path that does not
    #        exist), words the message must contain
    "unknown preset": (["nosuch", "--out", "RUN", "--overwrite"], ["nosuch", "demo"]),
    "unknown key": (["demo", "train.stepz=3", "--out", "RUN", "--overwrite"],
                    ["train.stepz", "train.steps"]),
    "bad value": (["demo", "train.steps=abc", "--out", "RUN", "--overwrite"],
                  ["train.steps", "abc"]),
    "unknown loss": (["demo", "loss.generator=foo", "--out", "RUN", "--overwrite"],
                     ["loss.generator", "minimax"]),
    "existing out": (["demo", "TINY", "--out", "RUN"], ["already exists", "--overwrite"]),
    "out is a file": (["demo", "TINY", "--out", "FILE", "--overwrite"], ["FILE"]),
    # --overwrite deletes run folders only: not a folder of user files, nor a folder of runs
    "overwrite user files": (["demo", "TINY", "--out", "BARE", "--overwrite"],
                             ["not a ganforge run folder", "notes.txt"]),
    "overwrite runs' parent": (["demo", "TINY", "--out", "PARENT", "--overwrite"],
                               ["not a ganforge run folder", "afile.txt, bare, empty ..."]),
    "image folder missing": (["dcgan-64", "TINY", "data.root=MISSING", "--out", "RUN",
                              "--overwrite"], ["data.root", "MISSING"]),
    "resume no checkpoint": (["--resume", "EMPTY", "train.steps=50"], ["no checkpoint", "EMPTY"]),
    "resume shape change": (["--resume", "RUN", "model.g_width=16", "train.steps=50"],
                            ["blocks.0.0.weight", "shape"]),
    "resume already past": (["--resume", "RUN", "train.steps=30"], ["already at step 40"]),
    "resume unknown key": (["--resume", "RUN", "train.stepz=50"], ["train.stepz"]),
    "resume other data": (["--resume", "RUN", "data.name=image-folder", "data.root=MISSING",
                         "train.steps=50"], ["data.name=image-folder is not this run's data"]),
    "resume other seed": (["--resume", "RUN", "train.seed=7", "train.steps=50"],
                          ["train.seed=7 is not this run's seed (0)", "a resume keeps it"]),
    "resume change, no steps": (["--resume", "RUN", "loss.generator=minimax"],
                                ["already at step 40", "loss.generator non-saturating -> "
                                 "minimax would not be used"]),
    "resume with preset": (["--resume", "RUN", "demo"], ["demo"]),
    "resume with out": (["--resume", "RUN", "train.steps=50", "--out", "RUN"], ["--out"]),
    "resume not a folder": (["--resume", "MISSING"], ["MISSING"]),
    "resume not a run": (["--resume", "BARE", "train.steps=50"], ["config.yaml", "BARE"]),
    "no preset": (["train.steps=3"], ["preset"]),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_bad_train_inputs_exit_2_and_touch_nothing(case, demo_copy, tiny, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(demo_copy / "config.yaml", empty / "config.yaml")
    (empty / "metrics.jsonl").write_text('{"step": 5, "d_loss": 1.0}\n')
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "notes.txt").write_text("not a run")
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me")
    missing = tmp_path / "no" / "such"
    subst = {"RUN": str(demo_copy), "EMPTY": str(empty), "BARE": str(bare), "FILE": str(afile),
             "MISSING": str(missing), "PARENT": str(tmp_path)}
    argv, words = BAD_TRAIN[case]
    args = []
    for a in argv:
        if a == "TINY":
            args += tiny(3)
            continue
        for k, v in subst.items():
            a = a.replace(k, v)
        args.append(a)
    before = {p: snapshot(p) for p in (demo_copy, empty, bare)}
    listing = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()

    assert cli("train", *args) == 2
    line = one_error_line(capsys)
    for w in words:
        assert subst.get(w, w) in line
    assert {p: snapshot(p) for p in (demo_copy, empty, bare)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert afile.read_text() == "keep me"
    assert not missing.parent.exists()


def test_overwrite_never_deletes_the_current_folder(demo_copy, tiny, monkeypatch, capsys):
    monkeypatch.chdir(demo_copy / "samples")
    before = snapshot(demo_copy)
    for out in (".", "..", str(demo_copy)):
        assert cli("train", "demo", *tiny(2), "--out", out, "--overwrite") == 2
        assert "is the current folder or holds it" in one_error_line(capsys)
    assert snapshot(demo_copy) == before


def test_subprocess_error_is_one_line(straight, tmp_path):
    run = shutil.copytree(straight("demo"), tmp_path / "run")
    before = snapshot(run)
    proc = subprocess.run([sys.executable, "-m", "ganforge", "train", "demo", "train.stepz=3",
                           "--out", str(run), "--overwrite"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganforge: error: ")
    assert "train.stepz" in lines[0]
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_subprocess_presets():
    proc = subprocess.run([sys.executable, "-m", "ganforge", "presets"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert {"demo", "gan-mnist", "dcgan-mnist", "cdcgan-mnist", "dcgan-64"} <= set(names)


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`ganforge presets | head -1`: the pipe closes before ganforge has written everything."""
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    assert proc.wait(timeout=300) == 141  # 128 + SIGPIPE, as `cat` would end
    assert proc.stderr.read() == b""


def test_presets_command(capsys):
    assert cli("presets") == 0
    out = capsys.readouterr().out
    for name in ("demo", "gan-mnist", "dcgan-mnist", "cdcgan-mnist", "dcgan-64"):
        line = next(line for line in out.splitlines() if line.split()[0] == name)
        assert len(line.split()) > 2  # a description follows the name


# ----------------------------------------------------------------------------- sample

def test_sample_npy_and_png(straight, tmp_path, capsys):
    run = straight("demo")
    assert cli("sample", run, "--n", 12, "--out", tmp_path / "a.npy") == 0
    a = np.load(tmp_path / "a.npy")
    assert a.shape == (12, 1, 28, 28) and a.dtype == np.float32
    assert a.min() >= -1 and a.max() <= 1 and a.std() > 0
    assert "12 samples" in capsys.readouterr().out
    # the same seed gives the same samples, another seed and another step do not
    assert cli("sample", run, "--n", 12, "--out", tmp_path / "b.npy") == 0
    assert np.array_equal(a, np.load(tmp_path / "b.npy"))
    assert cli("sample", run, "--n", 12, "--seed", 1, "--out", tmp_path / "c.npy") == 0
    assert not np.allclose(a, np.load(tmp_path / "c.npy"))
    assert cli("sample", run, "--n", 12, "--step", 10, "--out", tmp_path / "d.npy") == 0
    assert not np.allclose(a, np.load(tmp_path / "d.npy"))
    # and they are what the newest generator makes from the fixed noise
    g, cfg = load_generator(run)
    z, _ = fixed_inputs(cfg, 12, seed=0)
    assert np.array_equal(a, generate(g, z).numpy())

    assert cli("sample", run, "--n", 12, "--out", tmp_path / "sub" / "grid.png") == 0
    with Image.open(tmp_path / "sub" / "grid.png") as img:
        assert img.format == "PNG"
        assert img.size == (4 * 30 + 2, 3 * 30 + 2)  # 12 images, 4 per row, 28 px + padding


def test_sample_conditional_label(straight, tmp_path, capsys):
    run = straight("cdcgan-mnist")
    assert cli("sample", run, "--n", 10, "--label", 3, "--out", tmp_path / "three.npy") == 0
    assert cli("sample", run, "--n", 10, "--label", 4, "--out", tmp_path / "four.npy") == 0
    three, four = np.load(tmp_path / "three.npy"), np.load(tmp_path / "four.npy")
    assert three.shape == (10, 1, 28, 28) and three.min() >= -1 and three.max() <= 1
    assert not np.allclose(three, four)
    g, cfg = load_generator(run)
    z, _ = fixed_inputs(cfg, 10, seed=0)
    assert np.array_equal(three, generate(g, z, torch.full((10,), 3)).numpy())
    assert cli("sample", run, "--n", 20, "--out", tmp_path / "grid.png") == 0  # a row per class
    capsys.readouterr()
    assert cli("sample", run, "--label", 10, "--out", tmp_path / "x.npy") == 2
    assert "0..9" in one_error_line(capsys)


@pytest.mark.parametrize("args,words", [
    (["--out", "OUT/x.jpg"], [".png", ".npy"]),
    (["--out", "OUT/x"], [".png"]),
    (["--n", "0", "--out", "OUT/x.npy"], ["--n"]),
    (["--label", "3", "--out", "OUT/x.npy"], ["conditional"]),
    (["--step", "7", "--out", "OUT/x.npy"], ["available steps: 10, 20, 30, 40"]),
    (["--device", "tpu", "--out", "OUT/x.npy"], ["--device='tpu' is not known", "cuda:N"]),
])
def test_bad_sample_inputs(args, words, straight, tmp_path, capsys):
    run = straight("demo")
    before = snapshot(run)
    out = tmp_path / "out"
    assert cli("sample", run, *[a.replace("OUT", str(out)) for a in args]) == 2
    line = one_error_line(capsys)
    assert all(w in line for w in words)
    assert not out.exists()
    assert snapshot(run) == before


NUMBER_CASES = {  # option -> (value, words of the one-line usage error)
    "--seed": [(str(-2 ** 63 - 1), "is out of range; choose -2**63 .. 2**63 - 1"),
               (str(2 ** 63), f"--seed: {2 ** 63} is out of range"),
               ("1.5", "--seed: '1.5' is not a whole number")],
    "--step": [("-5", "--step: -5 is no checkpoint's step; steps are >= 0"),
               ("1.5", "--step: '1.5' is not a whole number")],
}


@pytest.mark.parametrize("command,option", [
    *[(c, "--seed") for c in ("sample", "interpolate", "arithmetic", "probe", "filters")],
    *[(c, "--step") for c in ("sample", "eval", "interpolate", "arithmetic", "probe", "filters")]])
def test_a_seed_or_step_out_of_range_is_a_usage_error(command, option, tmp_path, capsys):
    """A seed torch cannot take, a step no checkpoint has: one line, exit code 2."""
    for value, words in NUMBER_CASES[option]:
        with pytest.raises(SystemExit) as exit_:
            cli(command, tmp_path, option, value,
                *([] if command in ("probe", "eval") else ["--out", tmp_path / "x.png"]))
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1


def test_sample_npy_takes_the_suffix_in_any_case(straight, tmp_path):
    run = straight("demo")
    assert cli("sample", run, "--n", 3, "--out", tmp_path / "a.npy") == 0
    assert cli("sample", run, "--n", 3, "--out", tmp_path / "B.NPY") == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "B.NPY"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B.NPY", "a.npy"]


def test_an_out_that_cannot_be_written_is_one_line_naming_it(straight, tmp_path, monkeypatch,
                                                             capsys):
    """A read-only disk (or no permission) where --out goes: one line naming the file asked
    for, not the temporary name it was written under."""
    import errno

    import ganforge.files

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(src))

    run = straight("demo")
    monkeypatch.setattr(ganforge.files.os, "replace", read_only)
    for out in (tmp_path / "x.png", tmp_path / "x.npy"):
        assert cli("sample", run, "--n", 4, "--out", out) == 2
        assert one_error_line(capsys) == f"ganforge: error: read-only file system: '{out}'"
    assert list(tmp_path.iterdir()) == []


def test_sample_from_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli("sample", tmp_path, "--out", tmp_path / "x.png") == 2
    assert "config.yaml" in one_error_line(capsys)


# ----------------------------------------------------------------------------- every preset

PRESET_CHECKS = {
    "demo": lambda c: c.model.arch == "dcgan",
    "gan-mnist": lambda c: c.model.arch == "mlp",
    "dcgan-mnist": lambda c: (c.model.arch == "dcgan" and c.data.image_size == 28
                              and c.loss.penalty == "r1"),
    "cdcgan-mnist": lambda c: c.model.conditional and c.train.g_steps == 2,
    "dcgan-64": lambda c: c.data.name == "image-folder" and c.data.image_size == 64,
}


@pytest.mark.parametrize("preset", list(PRESET_CHECKS))
def test_every_preset_runs_a_few_steps(preset, tiny, tmp_path, capsys):
    extra = ["train.log_every=1"]
    size, channels = 28, 1
    if preset == "dcgan-64":
        root = write_png_folder(tmp_path / "images", n=20, size=(24, 20))
        extra += [f"data.root={root}", "train.batch_size=8"]
        size, channels = 64, 3
    run = tmp_path / "run"
    assert cli("train", preset, *tiny(3, *extra), "--out", run) == 0
    out = capsys.readouterr().out
    assert "data: " in out and "done: 3 steps" in out
    cfg = load_run_config(run / "config.yaml")
    assert PRESET_CHECKS[preset](cfg)
    records = read_metrics(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(set(STATS) <= set(r) and all(math.isfinite(r[k]) for k in STATS) for r in records)
    g = ckpt_file(run, 3)
    assert g  # the checkpoint holds the generator
    with Image.open(run / "samples" / "step_000003.png") as img:
        assert img.size == (10 * (size + 2) + 2,) * 2
        assert img.mode == ("L" if channels == 1 else "RGB")
    assert (run / "progress.gif").is_file() and (run / "curves.png").is_file()


def test_eval_every_on_rgb_images_measures_in_inception_space(random_inception_weights, tiny,
                                                             tmp_path, monkeypatch):
    """A 3-channel run evaluates with InceptionV3 (here random weights of its architecture):
    FID, KID, the Inception score and precision / recall, no digit metrics."""
    root = write_png_folder(tmp_path / "images", n=20, size=(24, 20))
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(random_inception_weights))
    run = tmp_path / "run"
    assert cli("train", "dcgan-64", *tiny(2, f"data.root={root}", "data.image_size=32",
                                       "train.batch_size=8", "train.eval_every=2",
                                       "train.eval_samples=12"), "--out", run) == 0
    record = read_metrics(run)[-1]
    assert {"fid", "kid", "is", "precision", "recall"} <= set(record)
    assert not {"digit_kl", "cond_acc"} & set(record)
    assert all(math.isfinite(record[k]) for k in ("fid", "kid", "is"))


def test_eval_every_on_rgb_images_without_inception_writes_nothing(tiny, tmp_path, capsys):
    """No weights (offline, no local file): one line before the run folder exists."""
    root = write_png_folder(tmp_path / "images", n=20, size=(24, 20))
    run = tmp_path / "run"
    assert cli("train", "dcgan-64", *tiny(2, f"data.root={root}", "train.batch_size=8",
                                       "train.eval_every=2"), "--out", run) == 2
    line = one_error_line(capsys)
    assert line.startswith("ganforge: error: train.eval_every on 3-channel images measures in "
                           "InceptionV3's feature space (or set train.eval_every=0): cannot load")
    assert line.endswith("with GANFORGE_INCEPTION_WEIGHTS=FILE (ganforge eval also takes "
                         "--inception-weights FILE)")
    assert not run.exists()


@pytest.mark.parametrize("extra, message", [
    (["train.eval_samples=3"], "train.eval_samples=3 is too few for the image metrics of "
                               "train.eval_every; choose 4 or more (default 2500)"),
    (["data.limit=3"], "train.eval_every needs at least 4 real images to score against; the "
                       "data has 3 (raise data.limit or set train.eval_every=0)"),
])
def test_eval_every_with_too_few_images_is_refused_before_the_run_changes(extra, message, tiny,
                                                                          tmp_path, capsys):
    """precision/recall's k-NN balls need 4 of each: refused up front, not at the first
    evaluation, when a resume has already rewritten config.yaml or --overwrite removed a run."""
    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(4), "--out", run) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for args in (["--resume", run, "train.steps=8"], ["demo", *tiny(4), "--out", run,
                                                      "--overwrite"]):
        capsys.readouterr()
        assert cli("train", *args, "train.eval_every=2", *extra) == 2
        assert one_error_line(capsys) == f"ganforge: error: {message}"
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert cli("train", "ring-gan", *tiny(4), "train.eval_every=2", "train.eval_samples=1",
               "--out", tmp_path / "toy") == 0  # the mode metrics take any number


def test_python_api_train_stays_callable(tiny, tmp_path):
    """``ganforge.train`` is also the name of a subpackage, which Python sets on the package
    when it is imported; the README's API calls it as a function, more than once."""
    import ganforge
    import ganforge.train.loop  # noqa: F401  (what used to hide the function)

    cfg = load_config("demo", [*tiny(2), "train.progress=false"])
    runs = [ganforge.train(cfg, tmp_path / name, log=lambda *a: None) for name in ("a", "b")]
    assert [r.name for r in runs] == ["a", "b"] and ckpt_file(runs[1], 2)
    ganforge.load_generator(runs[0])
    assert ganforge.train(cfg, tmp_path / "c", log=lambda *a: None).is_dir()
    # it shows the function's parameters, and the function imports by its own name too
    import inspect

    from ganforge.train import train
    assert train is ganforge.train.loop.train
    assert list(inspect.signature(ganforge.train).parameters)[:3] == ["cfg", "run_dir", "overwrite"]


OUT_CASES = {  # argv (RUN: a finished run, FILE: a plain file, DIR: a folder); words of the error
    "sample through a file": (["sample", "RUN", "--out", "FILE/x.png"], ["is a file"]),
    "sample into a folder": (["sample", "RUN", "--n", "4", "--out", "DIR"], ["is a folder"]),
    "sample no name": (["sample", "RUN", "--out", "DIR/.png"], ["needs a name before .png"]),
    "sample over a frame": (["sample", "RUN", "--out", "RUN/samples/step_000040.png"],
                            ["is inside 'samples' of the run folder"]),
    "sample a new frame": (["sample", "RUN", "--out", "RUN/samples/step_000500.png"],
                           ["is inside 'samples' of the run folder", "write elsewhere"]),
    "sample into tensorboard/ to come": (["sample", "RUN", "--out", "RUN/tensorboard/x.png"],
                                         ["is inside 'tensorboard' of the run folder"]),
    "sample over eval.json's place": (["sample", "RUN", "--out", "RUN/curves.png"],
                                      ["would replace a file of the run folder"]),
    "interpolate over the gif": (["interpolate", "RUN", "--out", "RUN/progress.gif"],
                                 ["would replace a file of the run folder"]),
    "classifier over weights": (["classifier", "--epochs", "1", "--out",
                                 "RUN/checkpoints/step_000040/generator.safetensors"],
                                ["is inside 'checkpoints' of the run folder"]),
    "theory with no folder": (["theory", "--out", ""], ["names no folder"]),
    "theory into a file": (["theory", "--out", "FILE"], ["must be a folder", "is a file"]),
    "theory through a file": (["theory", "--out", "FILE/sub"], ["must be a folder"]),
    "train through a file": (["train", "demo", "--out", "FILE/run"], ["is a file"]),
}


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_bad_out_paths_exit_2_and_touch_nothing(case, demo_copy, tmp_path, capsys):
    afile, folder = tmp_path / "afile", tmp_path / "dir.npy"
    afile.write_text("keep me")
    folder.mkdir()
    subst = {"RUN": str(demo_copy), "FILE": str(afile), "DIR": str(folder)}
    argv, words = OUT_CASES[case]
    args = [a.replace("RUN", subst["RUN"]).replace("FILE", subst["FILE"])
            .replace("DIR", subst["DIR"]) for a in argv]
    before = snapshot(demo_copy)
    capsys.readouterr()
    assert cli(*args) == 2
    line = one_error_line(capsys)
    assert all(w in line for w in words), line
    assert snapshot(demo_copy) == before and afile.read_text() == "keep me"
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("argv", [["sample", "RUN", "--n", "4", "--out", "LINK/x.png"],
                                  ["train", "demo", "--out", "LINK/run"],
                                  ["train", "demo", "--out", "LINK"]])
def test_an_out_through_a_link_to_nothing_is_one_line_naming_the_link(argv, demo_copy, tmp_path,
                                                                       capsys):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    before = snapshot(demo_copy)
    args = [a.replace("RUN", str(demo_copy)).replace("LINK", str(link)) for a in argv]
    assert cli(*args) == 2
    assert one_error_line(capsys) == (f"ganforge: error: '{link}' is a symbolic link to "
                                      f"'{tmp_path / 'gone'}', which does not exist; make that "
                                      "folder or choose another path")
    assert snapshot(demo_copy) == before and not (tmp_path / "gone").exists()


def test_an_out_where_no_file_can_be_made_is_one_line(demo_copy, tmp_path, monkeypatch, capsys):
    """ENOENT from the system (/proc refuses new files): one line naming the file, exit 2."""
    import errno

    import ganforge.files

    def refused(src, dst):
        raise OSError(errno.ENOENT, "No such file or directory", str(dst))

    monkeypatch.setattr(ganforge.files.os, "replace", refused)
    assert cli("sample", demo_copy, "--n", 4, "--out", tmp_path / "x.png") == 2
    assert one_error_line(capsys) == f"ganforge: error: no such file or directory: " \
                                     f"'{tmp_path / 'x.png'}'"


@pytest.mark.skipif(sys.platform != "linux", reason="/proc")
def test_an_out_where_no_file_can_be_made_is_refused_before_the_work(monkeypatch, capsys):
    """/proc takes no new file, whoever asks: classifier and sample say so before they train
    or load anything (the classifier trained for minutes, then failed to save)."""
    import ganforge.metrics.classifier as classifier

    monkeypatch.setattr(classifier, "train_classifier", lambda **kw: pytest.fail("trained"))
    for argv in (("classifier", "--out", "/proc/nope/w.safetensors"),
                 ("sample", "runs/none", "--out", "/proc/x.png")):
        assert cli(*argv) == 2
        assert one_error_line(capsys).startswith(
            f"ganforge: error: --out '{argv[-1]}' cannot be written: no new file can be made "
            "in '/proc' (")


def test_sample_may_write_a_new_file_into_a_run_folder(demo_copy):
    for _ in range(2):  # and replace it: it is not one of the run's own files
        assert cli("sample", demo_copy, "--n", "4", "--out", demo_copy / "mine.png") == 0


@pytest.mark.parametrize("argv, words", [
    (["sample", "RUN", "--n", "abc", "--out", "x.png"], ["--n", "abc", "ganforge sample --help"]),
    (["sample", "RUN"], ["--out", "required"]),
    ([], ["COMMAND"]),
    (["train", "demo", "--bogus"], ["--bogus"]),
])
def test_usage_mistakes_are_one_line_too(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        cli(*argv)
    assert e.value.code == 2
    line = one_error_line(capsys)
    assert all(w in line for w in words), line


def test_running_out_of_memory_is_one_line(demo_copy, tmp_path, monkeypatch, capsys):
    import ganforge.sampling

    def too_big(*a, **k):  # what torch's CPU allocator raises for --n 100000000
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 40000000000 bytes.")

    monkeypatch.setattr(ganforge.sampling, "generate", too_big)
    assert cli("sample", demo_copy, "--n", 100, "--out", tmp_path / "x.png") == 2
    assert "not enough memory for this request (it asked for 40.0 GB)" in one_error_line(capsys)

    def bug(*a, **k):
        raise RuntimeError("shape mismatch")  # not about memory: a real traceback

    monkeypatch.setattr(ganforge.sampling, "generate", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli("sample", demo_copy, "--n", 100, "--out", tmp_path / "x.png")


def test_a_penalty_turned_on_at_resume_starts_a_fresh_logging_window(tiny, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "gan-mnist", *tiny(13), "--out", run) == 0
    assert cli("train", "--resume", run, "train.steps=20", "loss.penalty=r1") == 0
    records = read_metrics(run)
    assert [r["step"] for r in records] == [5, 10, 13, 15, 20]  # 13 stays: 15 averages 14, 15
    assert "penalty" not in records[2] and records[3]["penalty"] >= 0


def _tensorboard_steps(run) -> dict[str, list[int]]:
    """The steps TensorBoard shows for each scalar and for the sample grids (after purges)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    steps = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return {**steps, "samples": [e.step for e in acc.Images("samples")]}


@pytest.mark.parametrize("first", [3, 4, 5, 7])  # a logging, sample or eval step, or none
def test_a_stop_resumes_to_a_straight_runs_metrics_grids_and_tensorboard(first, tiny, tmp_path):
    """What a stop adds at its step (an early record, an evaluation, a grid) is replaced by
    what a straight run has there, in metrics.jsonl, samples/ and TensorBoard alike."""
    sched = ["train.log_every=3", "train.sample_every=4", "train.checkpoint_every=5",
             "train.eval_every=5", "train.eval_samples=64", "train.tensorboard=true"]
    full, run = tmp_path / "full", tmp_path / "run"
    assert cli("train", "demo", *tiny(12, *sched), "--out", full) == 0
    assert cli("train", "demo", *tiny(first, *sched), "--out", run) == 0
    assert "fid" in read_metrics(run)[-1]  # the stop evaluated, as the end of a run does
    assert cli("train", "--resume", run, "train.steps=12") == 0
    assert without_time(read_metrics(run)) == without_time(read_metrics(full))
    assert sorted(p.name for p in (run / "samples").iterdir()) == \
        sorted(p.name for p in (full / "samples").iterdir())
    assert _tensorboard_steps(run) == _tensorboard_steps(full)


def test_resume_restores_torchs_global_generator(tiny, tmp_path, monkeypatch):
    """A model that draws from torch's global generator (dropout) still resumes bit for bit."""
    import torch.nn.functional as F
    import ganforge.train.loop as loop
    real_build = loop.build_models

    def with_dropout(cfg):
        g, d = real_build(cfg)
        forward = d.forward
        d.forward = lambda x, y=None: forward(F.dropout(x, 0.2, training=d.training), y)
        return g, d

    monkeypatch.setattr(loop, "build_models", with_dropout)
    full, split = tmp_path / "full", tmp_path / "split"
    assert cli("train", "gan-mnist", *tiny(20), "--out", full) == 0
    assert cli("train", "gan-mnist", *tiny(10), "--out", split) == 0
    assert cli("train", "--resume", split, "train.steps=20") == 0
    for name in ("generator", "discriminator"):
        assert_bitwise_equal(ckpt_file(full, 20, name), ckpt_file(split, 20, name))


def test_a_record_off_the_log_schedule_averages_only_its_own_steps(tiny, tmp_path):
    every, fives = tmp_path / "every", tmp_path / "fives"
    assert cli("train", "gan-mnist", *tiny(7, "train.log_every=1"), "--out", every) == 0
    assert cli("train", "gan-mnist", *tiny(7), "--out", fives) == 0  # log_every=5: 5, then 7
    per_step, records = read_metrics(every), read_metrics(fives)
    assert [r["step"] for r in records] == [5, 7]
    for record, steps in zip(records, (range(1, 6), range(6, 8))):
        for k in ("d_loss", "g_loss", "d_acc", "d_real", "d_fake"):
            mean = sum(per_step[s - 1][k] for s in steps) / len(steps)
            assert record[k] == pytest.approx(mean, abs=2e-6), (record["step"], k)


def test_a_second_ctrl_c_interrupts_at_once():
    from ganforge.train.loop import _StopFlag
    before = signal.getsignal(signal.SIGINT)
    with _StopFlag() as flag:
        flag.armed = True  # HEAD (5d3e439) arms the flag at the first write; a no-op at a7775ca
        signal.raise_signal(signal.SIGINT)
        assert flag.stop
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == before


def test_overwrite_refuses_a_folder_without_config_yaml_whose_names_look_like_a_run(
        tiny, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "samples").mkdir(parents=True)
    (out / "samples" / "holiday.png").write_bytes(b"my own picture")
    (out / "metrics.jsonl").write_text("my own notes\n")
    before = snapshot(out)
    assert cli("train", "demo", *tiny(2), "--out", out, "--overwrite") == 2
    assert "it has no config.yaml" in one_error_line(capsys)
    assert snapshot(out) == before


# ------------------------------------------------------- audit: argument handling

def test_a_negative_label_is_one_line(straight, tmp_path, capsys):
    assert cli("sample", straight("cdcgan-mnist"), "--label", -1, "--out", tmp_path / "x.npy") == 2
    assert "--label -1 is out of range; choose 0..9" in one_error_line(capsys)
    assert not (tmp_path / "x.npy").exists()


def test_a_conditional_grid_shows_one_class_a_row(straight, tmp_path):
    """20 samples of a conditional run: two rows of ten (class r in row r), not a 5x4 square."""
    assert cli("sample", straight("cdcgan-mnist"), "--n", 20, "--out", tmp_path / "g.png") == 0
    with Image.open(tmp_path / "g.png") as img:
        assert img.size == (10 * 30 + 2, 2 * 30 + 2)


def test_stray_arguments_are_a_usage_error_outside_train(straight, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli("sample", straight("demo"), "stray", "--out", tmp_path / "x.png")
    assert e.value.code == 2
    assert "unrecognized arguments: stray" in one_error_line(capsys)
    assert not (tmp_path / "x.png").exists()


def test_classifier_needs_an_epoch(tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    assert cli("classifier", "--epochs", 0, "--out", out) == 2
    assert "--epochs 0 must be at least 1" in one_error_line(capsys)
    assert not out.exists()


def test_option_defaults_are_the_documented_ones():
    """The defaults the help texts and README name."""
    from ganforge.cli import build_parser

    parse = build_parser().parse_args
    s = parse(["sample", "RUN", "--out", "x.png"])
    assert (s.n, s.seed, s.label, s.step, s.no_ema, s.device) == (100, 0, None, None, False, "cpu")
    i = parse(["interpolate", "RUN", "--out", "x.png"])
    assert (i.steps, i.rows, i.seed, i.spherical) == (10, 8, 0, False)
    a = parse(["arithmetic", "RUN", "--attribute", "slant", "--out", "x.png"])
    assert (a.pool, a.edit, a.quantile, a.scale, a.seed, a.digits, a.orthogonal) == \
        (5000, 500, 0.2, 1.0, 0, None, False)
    p = parse(["probe", "RUN"])
    assert (p.labels, p.draws, p.grid, p.seed) == ("100,1000", 5, 4, 0)
    f = parse(["filters", "RUN", "--out", "x.png"])
    assert (f.layer, f.channels, f.top, f.images, f.seed) == (None, 8, 8, 2000, 0)
    e = parse(["eval", "RUN"])
    assert (e.reference, e.metrics, e.extractor, e.n) == ("mnist", None, "auto", None)
    c = parse(["classifier", "--out", "w.safetensors"])
    assert (c.seed, c.epochs) == (0, 15)


def test_interpolate_and_arithmetic_use_the_trained_weights_with_no_ema(tiny, tmp_path, capsys):
    """--no-ema: G's trained weights, not their moving average, in every command that takes it."""
    import json

    from ganforge import latent

    run = tmp_path / "ema"
    assert cli("train", "demo", *tiny(4, "train.ema_decay=0.5", "train.checkpoint_every=4"),
               "--out", run) == 0
    raw, cfg = load_generator(run, ema=False)
    avg, _ = load_generator(run)
    z, _ = latent.interpolation_inputs(cfg, rows=2, steps=3)
    latent.save_interpolation(generate(raw, z), 3, tmp_path / "raw.png")
    latent.save_interpolation(generate(avg, z), 3, tmp_path / "avg.png")
    pixels = lambda p: np.asarray(Image.open(p))  # noqa: E731
    assert not np.array_equal(pixels(tmp_path / "raw.png"), pixels(tmp_path / "avg.png"))
    for flags, expected in (([], "avg.png"), (["--no-ema"], "raw.png")):
        out = tmp_path / f"walk{len(flags)}.png"
        assert cli("interpolate", run, "--rows", 2, "--steps", 3, *flags, "--out", out) == 0
        assert np.array_equal(pixels(out), pixels(tmp_path / expected)), flags
    capsys.readouterr()
    assert cli("arithmetic", run, "--attribute", "thickness", "--pool", 20, "--edit", 4,
               "--no-ema", "--json", "--out", tmp_path / "a.png") == 0
    printed = json.loads(capsys.readouterr().out)
    figures, _ = latent.arithmetic(raw, cfg, "thickness", pool=20, edit=4)
    assert printed == {**figures, "picture_rows": ["z - v", "z", "z + v"]}
