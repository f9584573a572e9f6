"""Mode metrics of the PacGAN protocol on samples placed exactly on known modes, so that modes
covered, % high quality and reverse KL can be worked out by hand."""
import math

import numpy as np
import pytest
import torch

from ganforge.metrics import grid_centers, mode_metrics, ring_centers

STD = 0.02  # VEEGAN ring: radius 2, std 0.02


@pytest.mark.parametrize("stds", [-STD, 0.0, [STD, STD], [STD] * 7 + [-STD], [[STD] * 8]])
def test_stds_must_be_positive_one_or_one_per_mode(stds):
    # a negative std gave hq 0 silently, a list of the wrong length a numpy broadcast error
    # and a (1, 8) table of stds is not one per mode either
    with pytest.raises(ValueError, match=r"stds must be one std > 0 or one per mode \(8\)"):
        mode_metrics(ring_centers(), ring_centers(), stds)


def around(center, n: int, radius: float) -> np.ndarray:
    """n points on a circle of the given radius around a 2-D centre (all at that distance)."""
    a = 2 * np.pi * np.arange(n) / n
    return np.asarray(center) + radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def test_ring_centres_are_eight_distinct_angles():
    c = ring_centers(8, 2.0)
    assert c.shape == (8, 2)
    np.testing.assert_allclose(np.hypot(c[:, 0], c[:, 1]), 2.0)
    angles = np.mod(np.arctan2(c[:, 1], c[:, 0]), 2 * np.pi)
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    # np.linspace(0, 2*pi, 8) would put two centres on top of each other; neighbours here are
    # a chord 2 r sin(pi/8) apart.
    d = np.linalg.norm(c[:, None] - c[None], axis=2) + np.eye(8) * 99
    assert d.min() == pytest.approx(2 * 2.0 * math.sin(math.pi / 8))


def test_grid_centres():
    c = grid_centers()
    assert c.shape == (25, 2)
    assert {tuple(p) for p in c} == {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}


def test_five_of_eight_ring_modes_plus_far_points():
    centres = ring_centers()
    covered = [0, 1, 3, 4, 6]
    inside = np.concatenate([around(centres[k], 500, 2 * STD) for k in covered])
    far = np.full((100, 2), 10.0)
    r = mode_metrics(np.concatenate([inside, far]), centres, STD)
    assert r["n"] == 2600
    assert r["modes"] == 5
    assert r["hq"] == pytest.approx(100 * 2500 / 2600)
    assert r["kl"] == pytest.approx(math.log(8 / 5))  # uniform over 5 of 8: sum 1/5 log(8/5)
    assert r["counts"] == [500, 500, 0, 500, 500, 0, 500, 0]


def test_uniform_over_all_modes_has_zero_kl_and_one_mode_has_log_m():
    centres = grid_centers()
    even = np.concatenate([around(c, 100, 0.05) for c in centres])
    r = mode_metrics(even, centres, 0.05)
    assert (r["modes"], r["hq"], r["kl"]) == (25, 100.0, pytest.approx(0.0, abs=1e-12))
    one = around(centres[7], 2500, 0.05)
    r = mode_metrics(one, centres, 0.05)
    assert (r["modes"], r["hq"]) == (1, 100.0)
    assert r["kl"] == pytest.approx(math.log(25))


def test_kl_is_against_the_modes_weights():
    """Data with modes of weights 1/4 and 3/4: a G that draws them in those proportions has KL
    0; one that draws them evenly has 1/2 log(1/2 / 1/4) + 1/2 log(1/2 / 3/4) = 1/2 log(4/3),
    the uniform reference's 0 for it being the wrong answer."""
    centres = np.array([[-3.0, 0.0], [3.0, 0.0]])
    as_data = np.concatenate([around(centres[0], 250, 0.5), around(centres[1], 750, 0.5)])
    even = np.concatenate([around(centres[0], 500, 0.5), around(centres[1], 500, 0.5)])
    assert mode_metrics(as_data, centres, 0.5, weights=[1, 3])["kl"] == \
        pytest.approx(0.0, abs=1e-12)  # weights are scaled to sum to 1
    assert mode_metrics(even, centres, 0.5, weights=[0.25, 0.75])["kl"] == \
        pytest.approx(0.5 * math.log(4 / 3))
    assert mode_metrics(even, centres, 0.5)["kl"] == pytest.approx(0.0, abs=1e-12)
    assert mode_metrics(even, centres, 0.5, weights=[2, 2]) == mode_metrics(even, centres, 0.5)


@pytest.mark.parametrize("weights", [[1.0], [1.0, 0.0], [1.0, -1.0], [1.0, math.nan]])
def test_weights_must_be_positive_one_per_mode(weights):
    with pytest.raises(ValueError, match=r"weights must be one number > 0 per mode \(2\)"):
        mode_metrics(np.zeros((3, 1)), np.array([[-3.0], [3.0]]), 0.5, weights=weights)


def test_uneven_shares_give_the_hand_computed_kl():
    centres = ring_centers()
    samples = np.concatenate([around(centres[2], 300, STD), around(centres[5], 100, STD)])
    r = mode_metrics(torch.tensor(samples, dtype=torch.float32), centres, STD)  # torch input
    assert r["modes"] == 2
    assert r["kl"] == pytest.approx(0.75 * math.log(0.75 * 8) + 0.25 * math.log(0.25 * 8),
                                    rel=1e-6)


def test_threshold_is_three_stds_of_the_nearest_mode():
    centres = ring_centers()
    stds = np.full(8, STD)
    stds[1] = 0.1  # one wide mode: a per-mode std must be used for its own samples only
    samples = np.concatenate([
        around(centres[0], 10, 2.9 * STD),   # HQ
        around(centres[0], 10, 3.1 * STD),   # just outside 3 std
        around(centres[1], 10, 2.9 * 0.1),   # HQ only because mode 1 is wide
    ])
    r = mode_metrics(samples, centres, stds)
    assert r["counts"][:2] == [10, 10] and r["modes"] == 2
    assert r["hq"] == pytest.approx(100 * 20 / 30)
    assert mode_metrics(samples, centres, stds, threshold=4.0)["hq"] == 100.0
    # a sample exactly at the threshold counts (std 1 at the origin: (3, 0) is 3 std away,
    # (3, 4) is 5)
    origin = np.zeros((1, 2))
    assert mode_metrics(np.array([[3.0, 0.0]]), origin, 1.0)["hq"] == 100.0
    assert mode_metrics(np.array([[3.0, 4.0]]), origin, 1.0, threshold=5.0)["hq"] == 100.0


def test_no_high_quality_sample():
    r = mode_metrics(np.zeros((50, 2)), ring_centers(), STD)  # the ring's centre: far from all
    assert (r["modes"], r["hq"], r["kl"], r["counts"]) == (0, 0.0, None, [0] * 8)


def test_one_dimensional_two_peaks():
    centres = np.array([-3.0, 3.0])
    left = -3 + np.linspace(-1, 1, 300)      # within 2 std of -3 (std 0.5)
    right = 3 + np.linspace(-1, 1, 100)
    middle = np.linspace(-0.5, 0.5, 100)     # 5 std or more from both peaks
    r = mode_metrics(np.concatenate([left, right, middle]), centres, 0.5)
    assert (r["n"], r["modes"], r["counts"]) == (500, 2, [300, 100])
    assert r["hq"] == pytest.approx(80.0)
    assert r["kl"] == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    # (N, 1) samples and (M, 1) centres, as torch, give the same answer.
    r2 = mode_metrics(torch.tensor(np.concatenate([left, right, middle]))[:, None],
                      torch.tensor(centres)[:, None], 0.5)
    assert r2 == r


def test_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2-D"):
        mode_metrics(np.zeros((3, 1)), ring_centers(), STD)
    for samples, centres in ((np.zeros((0, 2)), ring_centers()),
                             (np.zeros((3, 2)), np.zeros((0, 2)))):
        with pytest.raises(ValueError, match="needs at least one sample and one centre"):
            mode_metrics(samples, centres, STD)


def test_grid_centres_run_over_the_second_coordinate_first():
    """Centre k is (values[k // 5], values[k % 5]), the order of torch.cartesian_prod that the
    grid data (data/toy.py) uses, so counts and weights given in one order line up with the
    other."""
    v = (-4, -2, 0, 2, 4)
    assert grid_centers().tolist() == [[a, b] for a in v for b in v]
    np.testing.assert_array_equal(
        grid_centers(), torch.cartesian_prod(torch.tensor(v, dtype=torch.float64),
                                             torch.tensor(v, dtype=torch.float64)).numpy())


def test_one_high_quality_sample_covers_a_mode():
    centres = ring_centers()
    samples = np.concatenate([centres[[3]], around(centres[6], 10, STD)])
    r = mode_metrics(samples, centres, STD)
    assert r["modes"] == 2 and r["counts"] == [0, 0, 0, 1, 0, 0, 10, 0]
    assert r["kl"] == pytest.approx(1 / 11 * math.log(8 / 11) + 10 / 11 * math.log(80 / 11))


def test_kl_reads_the_weight_of_each_covered_mode():
    """Weights 1/4, 1/4, 1/2 and every HQ sample on the last mode: KL = 1 * log(1 / (1/2)) =
    log 2; all of them on the first: log 4. Only covered modes enter the sum, each with its
    own weight."""
    centres = np.array([[-3.0], [0.0], [3.0]])
    assert mode_metrics(np.full(20, 3.0), centres, 0.5, weights=[1, 1, 2])["kl"] == \
        pytest.approx(math.log(2))
    assert mode_metrics(np.full(20, -3.0), centres, 0.5, weights=[1, 1, 2])["kl"] == \
        pytest.approx(math.log(4))
    # 10 on the middle mode, 30 on the last: 1/4 log(1/4 / 1/4) + 3/4 log(3/4 / 1/2)
    samples = np.concatenate([np.full(10, 0.1), np.full(30, 2.9)])
    assert mode_metrics(samples, centres, 0.5, weights=[1, 1, 2])["kl"] == \
        pytest.approx(0.75 * math.log(1.5))


def test_torch_samples_that_require_grad_are_read():
    centres = ring_centers()
    samples = np.concatenate([around(centres[0], 30, STD), around(centres[4], 10, STD)])
    x = torch.tensor(samples, requires_grad=True)
    assert mode_metrics(x * 1.0, centres, STD) == mode_metrics(samples, centres, STD)
