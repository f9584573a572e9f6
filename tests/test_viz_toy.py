"""Toy-run pictures: the KDE is a density and agrees with scipy's; each frame is a PNG of the
fixed size that lets frames line up in a GIF."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import gaussian_kde

from ganforge.metrics import ring_centers
from ganforge.viz.toy import DPI, FIGSIZE_1D, FIGSIZE_2D, frame_1d, frame_2d, kde_1d

XS = np.linspace(-8, 8, 1601)


def normal(x, mu, s):
    return np.exp(-0.5 * ((x - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))


def test_kde_integrates_to_one_and_peaks_at_the_data():
    samples = np.random.default_rng(0).normal(1.5, 0.7, 2000)
    p = kde_1d(samples, XS)
    assert np.trapezoid(p, XS) == pytest.approx(1.0, abs=1e-3)
    assert XS[p.argmax()] == pytest.approx(1.5, abs=0.15)
    # Scott's rule, the same estimate as scipy's default
    np.testing.assert_allclose(p, gaussian_kde(samples)(XS), rtol=1e-8, atol=1e-12)


def test_kde_of_identical_samples_is_a_finite_spike():
    p = kde_1d(torch.full((100,), 3.0), XS)  # a fully collapsed G: std 0
    assert np.isfinite(p).all()
    assert np.trapezoid(p, XS) == pytest.approx(1.0, abs=1e-3)
    assert XS[p.argmax()] == pytest.approx(3.0)


def test_kde_explicit_bandwidth():
    p = kde_1d(np.array([0.0]), XS, bandwidth=2.0)
    np.testing.assert_allclose(p, normal(XS, 0.0, 2.0))
    with pytest.raises(ValueError):
        kde_1d(np.array([0.0]), XS, bandwidth=0.0)


def png_size(path):
    assert path.stat().st_size > 0
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.format, img.size


def test_frame_1d(tmp_path):
    p_data = 0.5 * normal(XS, -3, 0.5) + 0.5 * normal(XS, 3, 0.5)
    fake = torch.randn(500) * 0.6 + 2.5
    d = 1 / (1 + np.exp(-XS))
    path = tmp_path / "f.png"
    frame_1d(path, XS, p_data, fake, d, step=100)
    assert png_size(path) == ("PNG", (int(FIGSIZE_1D[0] * DPI), int(FIGSIZE_1D[1] * DPI)))


def test_frame_2d(tmp_path):
    rng = np.random.default_rng(0)
    centres = ring_centers()
    real = centres[rng.integers(0, 8, 300)] + rng.normal(0, 0.02, (300, 2))
    fake = torch.randn(300, 2) * 0.3
    gx = gy = np.linspace(-3, 3, 50)
    d = 1 / (1 + np.exp(-np.add.outer(gy, gx)))
    for name, (x, y) in {"axes": (gx, gy), "mesh": np.meshgrid(gx, gy)}.items():
        path = tmp_path / f"{name}.png"
        frame_2d(path, real, fake, x, y, d, step=7)
        assert png_size(path) == ("PNG", (int(FIGSIZE_2D[0] * DPI), int(FIGSIZE_2D[1] * DPI)))
