"""Latent space: interpolation paths, digit attributes and vector arithmetic
(``ganforge interpolate`` and ``ganforge arithmetic``) on tiny trained runs."""
from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from ganforge import latent
from ganforge.config import load_config
from ganforge.errors import GanforgeError
from ganforge.sampling import generate, sample_z
from ganforge.train.checkpoint import load_generator
from helpers import cli, one_error_line


def grid_size(rows: int, cols: int, side: int = 28, scale: int = 2) -> tuple[int, int]:
    """(width, height) of a save_grid picture: 2 px padding around every cell."""
    return (cols * (side + 2) + 2) * scale, (rows * (side + 2) + 2) * scale


def assert_labelled_grid(path, rows: int, cols: int) -> None:
    """An arithmetic picture: the grid, with a column naming its rows on the left."""
    width, height = Image.open(path).size
    assert height == grid_size(rows, cols)[1] and width > grid_size(rows, cols)[0]


# ----------------------------------------------------------------------------- paths

@pytest.mark.parametrize("spherical", [False, True])
def test_paths_start_and_end_exactly_at_the_end_points(spherical):
    gen = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 100, generator=gen), 3 * torch.randn(4, 100, generator=gen)
    path = latent.interpolation_path(z0, z1, 7, spherical)
    assert path.shape == (4, 7, 100)
    assert torch.equal(path[:, 0], z0) and torch.equal(path[:, -1], z1)
    t = torch.linspace(0, 1, 7)[None, :]
    if not spherical:
        torch.testing.assert_close(path[:, 3], (z0 + z1) / 2)
        middle = (z0.norm(dim=-1) + z1.norm(dim=-1)) / 2
        assert (path.norm(dim=-1)[:, 3] < 0.9 * middle).all()  # cuts inside the shell
        return
    # spherical: the norm goes linearly from |z0| to |z1| ...
    r0, r1 = z0.norm(dim=-1)[:, None], z1.norm(dim=-1)[:, None]
    torch.testing.assert_close(path.norm(dim=-1), (1 - t) * r0 + t * r1)
    # ... and the direction turns at a constant rate along the great circle
    u = path / path.norm(dim=-1, keepdim=True)
    angles = torch.acos((u[:, 1:] * u[:, :-1]).sum(-1).clamp(-1, 1))
    torch.testing.assert_close(angles, angles[:, :1].expand_as(angles), atol=1e-4, rtol=0)


def test_spherical_path_between_parallel_points_is_finite():
    z0 = torch.ones(1, 5)
    path = latent.interpolation_path(z0, 2 * z0, 5, spherical=True)
    assert torch.isfinite(path).all()
    torch.testing.assert_close(path.norm(dim=-1), z0.norm() * torch.linspace(1, 2, 5)[None])


def test_spherical_path_without_a_great_circle_walks_straight():
    # opposite directions and a zero end point used to give NaN in the middle of the path
    for z0, z1 in ((torch.ones(1, 4), -torch.ones(1, 4)), (torch.zeros(1, 4), torch.ones(1, 4)),
                   (torch.ones(1, 4), torch.zeros(1, 4))):
        path = latent.interpolation_path(z0, z1, 3, spherical=True)
        torch.testing.assert_close(path, latent.interpolation_path(z0, z1, 3))
    # a degenerate row leaves the other rows on their great circle
    z0, z1 = torch.tensor([[1.0, 0], [1, 0]]), torch.tensor([[-1.0, 0], [0, 2]])
    mid = latent.interpolation_path(z0, z1, 3, spherical=True)[:, 1]
    torch.testing.assert_close(mid, torch.tensor([[0.0, 0], [1.5 * 0.5 ** 0.5, 1.5 * 0.5 ** 0.5]]))


def test_end_points_of_different_shapes_are_an_error():
    for z1 in (torch.randn(2, 8), torch.randn(3, 5), torch.randn(8)):  # was a broadcast error
        with pytest.raises(GanforgeError, match=r"\(R, D\) of the same shape; got \(3, 8\)"):
            latent.interpolation_path(torch.randn(3, 8), z1, 4)
    # integer end points gave a path cut to integers; numpy ones a torch TypeError
    for z1 in (torch.ones(3, 8, dtype=torch.int64), torch.randn(3, 8).numpy()):
        with pytest.raises(GanforgeError, match="must be float tensors"):
            latent.interpolation_path(torch.randn(3, 8), z1, 4)
    with pytest.raises(GanforgeError, match="--steps 2.5 must be at least 2"):
        latent.interpolation_path(torch.randn(3, 8), torch.randn(3, 8), 2.5)


def test_save_interpolation_checks_suffix_and_steps(tmp_path):
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    with pytest.raises(GanforgeError, match=r"must end in \.png .* or \.gif"):
        latent.save_interpolation(images, 3, tmp_path / "w.jpg")  # was KeyError 'JPEG'
    for steps in (4, 0):  # 4 was a reshape error (gif) or a ragged grid (png)
        with pytest.raises(GanforgeError, match=f"6 images do not split into paths of --steps "
                                                f"{steps}"):
            latent.save_interpolation(images, steps, tmp_path / "w.gif")
    assert not list(tmp_path.iterdir())
    latent.save_interpolation(images, 3, tmp_path / "w.GIF")
    assert Image.open(tmp_path / "w.GIF").n_frames == 2 * 3 - 2


def test_steps_below_two_is_an_error():
    with pytest.raises(GanforgeError, match="at least 2"):
        latent.interpolation_path(torch.zeros(1, 3), torch.ones(1, 3), 1)


def test_interpolation_images_end_at_g_of_the_end_points(dcgan):
    g, cfg = load_generator(dcgan)
    z, y = latent.interpolation_inputs(cfg, rows=3, steps=5, seed=4)
    assert y is None and z.shape == (15, cfg.model.z_dim)
    gen = torch.Generator().manual_seed(4)
    z0 = sample_z(3, cfg.model.z_dim, cfg.model.z_dist, gen)
    z1 = sample_z(3, cfg.model.z_dim, cfg.model.z_dist, gen)
    paths = z.view(3, 5, -1)
    assert torch.equal(paths[:, 0], z0) and torch.equal(paths[:, -1], z1)
    images = generate(g, z).view(3, 5, 1, 28, 28)
    torch.testing.assert_close(images[:, 0], generate(g, z0), atol=1e-6, rtol=0)
    torch.testing.assert_close(images[:, -1], generate(g, z1), atol=1e-6, rtol=0)


def test_conditional_rows_walk_the_label_at_fixed_z(cdcgan):
    g, cfg = load_generator(cdcgan)
    z, y = latent.interpolation_inputs(cfg, rows=2, steps=4, seed=0)
    assert z.shape == (16, cfg.model.z_dim) and y.shape == (16, 10)
    label_rows = y[8:].view(2, 4, 10)
    assert torch.equal(label_rows[0, 0], torch.eye(10)[0])
    assert torch.equal(label_rows[0, -1], torch.eye(10)[1])
    torch.testing.assert_close(label_rows.sum(-1), torch.ones(2, 4))
    assert torch.equal(z[8:].view(2, 4, -1)[:, 0], z[:8].view(2, 4, -1)[:, 0])  # z fixed
    assert (z[8:].view(2, 4, -1) == z[8:].view(2, 4, -1)[:, :1]).all()
    # a one-hot given as floats draws exactly what the integer label draws
    ints = torch.tensor([0, 1, 7, 9])
    assert torch.equal(generate(g, z[:4], torch.eye(10)[ints]), generate(g, z[:4], ints))


# ----------------------------------------------------------------------------- the command

def test_interpolate_png_and_gif(dcgan, cdcgan, tmp_path, capsys):
    out = tmp_path / "walk.png"
    assert cli("interpolate", dcgan, "--rows", 3, "--steps", 5, "--spherical", "--out", out) == 0
    assert "spherical" in capsys.readouterr().out
    assert Image.open(out).size == grid_size(3, 5)
    gif = tmp_path / "walk.gif"
    assert cli("interpolate", dcgan, "--rows", 4, "--steps", 5, "--out", gif) == 0
    with Image.open(gif) as img:
        assert img.n_frames == 2 * 5 - 2  # forwards, then back
        assert img.size == grid_size(2, 2)
    assert cli("interpolate", cdcgan, "--rows", 2, "--steps", 6, "--out", out) == 0
    assert "walk the label" in capsys.readouterr().out
    assert Image.open(out).size == grid_size(4, 6)  # 2 rows of z paths, 2 of label paths


# ----------------------------------------------------------------------------- attributes

def _bar(shear: float) -> torch.Tensor:
    """A 1x28x28 vertical bar in [-1, 1] whose top is shifted right by shear px per row up."""
    x = -torch.ones(1, 1, 28, 28)
    for r in range(4, 24):
        c = round(14 + shear * (14 - r))
        x[0, 0, r, c - 1: c + 2] = 1
    return x


def test_slant_and_thickness_of_drawn_bars():
    straight, right, left = _bar(0.0), _bar(0.5), _bar(-0.5)
    assert abs(float(latent.slant(straight))) < 1e-6
    assert float(latent.slant(right)) == pytest.approx(math.degrees(math.atan(0.5)), abs=3)
    assert float(latent.slant(left)) == pytest.approx(-math.degrees(math.atan(0.5)), abs=3)
    assert float(latent.thickness(straight)) == pytest.approx(20 * 3)  # 20 rows of 3 px
    bold = torch.nn.functional.max_pool2d(straight, 3, 1, 1)  # dilate the stroke
    assert float(latent.thickness(bold)) > 1.5 * float(latent.thickness(straight))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) .*got shape \(1, 28, 28\)"):
        latent.thickness(straight[:, 0])  # (N, 28, 28) was an IndexError


def test_arithmetic_figures_match_a_recomputation(dcgan, tmp_path, capsys):
    out = tmp_path / "thick.png"
    args = ("--pool", 300, "--edit", 40, "--seed", 2)
    assert cli("arithmetic", dcgan, "--attribute", "thickness", *args, "--json",
               "--out", out) == 0
    printed = json.loads(capsys.readouterr().out)
    g, cfg = load_generator(dcgan)
    figures, tensors = latent.arithmetic(g, cfg, "thickness", pool=300, edit=40, seed=2)
    assert printed == {**figures, "picture_rows": ["z - v", "z", "z + v"]}
    assert_labelled_grid(out, 3, 10)
    z, v = tensors["z"], tensors["v"]
    assert len(z) == 40 and torch.linalg.vector_norm(v) == pytest.approx(printed["vector_norm"])
    ink = lambda x: float(((x + 1) / 2).sum((1, 2, 3)).double().mean())  # noqa: E731
    classes = lambda x: latent.digit_class(x)  # noqa: E731
    x0, plus = generate(g, z), generate(g, z + v)
    assert ink(x0) == pytest.approx(printed["before"], rel=1e-5)
    assert ink(plus) == pytest.approx(printed["rows"]["z + v"]["mean"], rel=1e-5)
    assert ink(generate(g, z - v)) == pytest.approx(printed["rows"]["z - v"]["mean"], rel=1e-5)
    kept = float((classes(plus) == classes(x0)).double().mean())
    assert kept == pytest.approx(printed["rows"]["z + v"]["kept"])
    rand = tensors["random"]
    assert torch.linalg.vector_norm(rand) == pytest.approx(printed["vector_norm"], rel=1e-5)
    assert cli("arithmetic", dcgan, "--attribute", "slant", *args, "--out", out) == 0
    table = capsys.readouterr().out
    assert "slant" in table and "z + random" in table and "digit kept" in table
    assert cli("arithmetic", dcgan, "--attribute", "thickness", *args, "--out", out) == 0
    assert f"{printed['rows']['z + v']['mean']:.2f}" in capsys.readouterr().out


def test_digit_arithmetic(dcgan, tmp_path, capsys, monkeypatch):
    """A 10-step G draws one digit only, so the classifier is replaced by ink: thinner than the
    pool's median is a "2", thicker a "7", and v from 2 to 7 must turn more 2s into 7s than a
    random vector of its length does."""
    g, cfg = load_generator(dcgan)
    assert cli("arithmetic", dcgan, "--attribute", "digit", "--digits", "2,7", "--pool", 300,
               "--out", tmp_path / "d.png") == 2
    assert "pool holds" in one_error_line(capsys)  # what the real classifier sees: too few
    pool = sample_z(300, cfg.model.z_dim, cfg.model.z_dist, torch.Generator().manual_seed(0))
    middle = latent.thickness(generate(g, pool)).median()
    monkeypatch.setattr(latent, "digit_class",
                        lambda x: torch.where(latent.thickness(x) > middle, 7, 2))
    assert cli("arithmetic", dcgan, "--attribute", "digit", "--digits", "2,7", "--pool", 300,
               "--edit", 200, "--json", "--out", tmp_path / "d.png") == 0
    f = json.loads(capsys.readouterr().out)
    assert f["before"] == 0.0 and 5 <= f["n_edited"] < 200  # only the z drawn as a 2 are edited
    assert set(f["rows"]) == {"z + v", "z + random"} and f["picture_rows"] == ["z", "z + v"]
    assert f["rows"]["z + v"]["mean"] > f["rows"]["z + random"]["mean"]
    assert_labelled_grid(tmp_path / "d.png", 2, 10)
    assert cli("arithmetic", dcgan, "--attribute", "digit", "--digits", "2,7", "--pool", 300,
               "--edit", 200, "--out", tmp_path / "d.png") == 0
    table = capsys.readouterr().out
    assert "digit 2 -> 7" in table and "still a 2" in table and " pts" in table


def test_orthogonal_vector_is_orthogonal_to_the_class_means(dcgan):
    g, cfg = load_generator(dcgan)
    gen = torch.Generator().manual_seed(0)
    z = sample_z(200, cfg.model.z_dim, cfg.model.z_dist, gen)
    classes = torch.arange(200) % 4  # made-up classes: the projection is plain linear algebra
    images = generate(g, z)
    plain, _ = latent.attribute_vector(z, classes, "slant", images)
    v, info = latent.attribute_vector(z, classes, "slant", images, orthogonal=True)
    assert info["groups"] == [10] * 4
    offsets = torch.stack([z[classes == c].mean(0) - z.mean(0) for c in range(4)])
    assert (offsets @ v).abs().max() < 1e-4 and (offsets @ plain).abs().max() > 1e-2
    assert 0 < v.norm() < plain.norm()
    # the class-size-weighted offsets sum to 0 (rank 3 here): removing exactly their span,
    # not a fourth direction of round-off that QR would add
    a = offsets[:3].T.double()  # the fourth is minus the sum of these
    exact = plain.double() - a @ torch.linalg.pinv(a) @ plain.double()
    assert torch.allclose(v.double(), exact, atol=1e-5)


def test_attribute_needs_a_digit_run():
    cfg = load_config("dcgan-mnist", ["data.channels=3"])
    with pytest.raises(GanforgeError, match="1-channel"):
        latent.check_digit_run(cfg, "arithmetic")
    with pytest.raises(GanforgeError, match="toy"):
        latent.check_digit_run(load_config("ring-gan"), "arithmetic")


def test_bad_input_is_one_line_and_exit_2(dcgan, cdcgan, tmp_path, capsys):
    png = tmp_path / "x.png"
    cases = [
        (("interpolate", tmp_path / "nope", "--out", png), "nope"),
        (("interpolate", dcgan, "--out", tmp_path / "x.jpg"), ".png or .gif"),
        (("interpolate", dcgan, "--steps", 1, "--out", png), "--steps 1"),
        (("arithmetic", dcgan, "--attribute", "smile", "--out", png), "thickness, slant, digit"),
        (("arithmetic", dcgan, "--attribute", "slant", "--out", tmp_path / "x.gif"), ".png"),
        (("arithmetic", dcgan, "--attribute", "digit", "--digits", "3", "--out", png), "A,B"),
        (("arithmetic", cdcgan, "--attribute", "digit", "--out", png), "unconditional"),
        (("arithmetic", dcgan, "--attribute", "digit", "--orthogonal", "--out", png),
         "thickness and slant"),
        (("arithmetic", dcgan, "--attribute", "thickness", "--digits", "7,9", "--out", png),
         "--digits goes with --attribute digit"),
        (("arithmetic", dcgan, "--attribute", "slant", "--scale", "nan", "--out", png),
         "--scale nan must be a finite number"),
        (("arithmetic", dcgan, "--attribute", "slant", "--scale", "1e30", "--out", png),
         "--scale 1e+30 makes the vector too long for float32"),
        (("interpolate", dcgan, "--device", "tpu", "--out", png), "--device='tpu' is not known"),
        (("arithmetic", dcgan, "--attribute", "slant", "--device", "gpu", "--out", png),
         "--device='gpu' is not known"),
    ]
    for argv, words in cases:
        assert cli(*argv) == 2, argv
        assert words in one_error_line(capsys)
    assert not png.exists()


def test_arithmetic_on_a_conditional_run_keeps_the_labels(cdcgan, tmp_path, capsys):
    assert cli("arithmetic", cdcgan, "--attribute", "thickness", "--pool", 200, "--edit", 20,
               "--json", "--out", tmp_path / "c.png") == 0
    f = json.loads(capsys.readouterr().out)
    assert f["n_edited"] == 20 and len(f["groups"]) == 10  # grouped within each label
    g, cfg = load_generator(cdcgan)
    _, tensors = latent.arithmetic(g, cfg, "thickness", pool=200, edit=20)
    assert torch.equal(tensors["y"], torch.arange(20) % 10)


def test_the_report_of_blank_images_has_no_percentage_change():
    """A G that draws blank images has no ink to grow by a percentage (was a ZeroDivisionError)."""
    rows = {name: {"mean": 0.0, "change": 0.0, "kept": 1.0}
            for name in ("z + v", "z - v", "z + random")}
    report = latent.arithmetic_report({
        "attribute": "thickness", "quantile": 0.2, "measure": "ink mass (pixels)", "pool": 40,
        "orthogonal": False, "vector_norm": 0.5, "n_edited": 2, "before": 0.0, "rows": rows})
    assert report.splitlines()[-3].split() == ["z", "+", "v", "0.00", "+0.00", "100.0%"]


def test_the_digit_report_names_each_group_with_its_digit():
    rows = {name: {"mean": 0.5, "change": 0.1, "kept": 0.9}
            for name in ("z + v", "z - v", "z + random")}
    report = latent.arithmetic_report({
        "attribute": "digit", "digits": [7, 9], "groups": [830, 354], "pool": 5000,
        "measure": "share drawn as a 9",
        "vector_norm": 0.5, "n_edited": 2, "before": 0.4, "rows": rows})
    assert report.splitlines()[0] == ("digit 7 -> 9: v = mean z(G(z) is a 9) - mean z(G(z) is a "
                                      "7) over a pool of 5000 (354 9s and 830 7s); |v| = 0.50")


# ------------------------------------------------------- each part against what it computes

@pytest.mark.parametrize("attribute", ["thickness", "slant"])
def test_attribute_vector_points_from_the_bottom_to_the_top_group(attribute):
    """v = mean z(top quantile) - mean z(bottom quantile): with an attribute that rises with
    z[:, 0], v points along +z[:, 0], and equals that difference of means exactly."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(20, 4, generator=gen)
    order = z[:, 0].argsort()
    if attribute == "thickness":  # a flat grey image whose ink rises with z[:, 0]
        images = torch.sigmoid(z[:, 0]).mul(2).sub(1)[:, None, None, None].expand(20, 1, 28, 28)
    else:  # bars that lean further right as z[:, 0] grows
        shear = torch.linspace(-0.6, 0.6, 20)[order.argsort()]
        images = torch.cat([_bar(float(s)) for s in shear])
    value = getattr(latent, attribute)(images)
    top, bottom = set(order[-4:].tolist()), set(order[:4].tolist())
    assert set(value.argsort()[-4:].tolist()) == top and set(value.argsort()[:4].tolist()) == bottom
    v, info = latent.attribute_vector(z, torch.zeros(20, dtype=torch.long), attribute, images)
    assert info["groups"] == [4]  # int(20 * 0.2) a group
    torch.testing.assert_close(v, z[order[-4:]].mean(0) - z[order[:4]].mean(0))
    assert v[0] > 1 and v[0] == v.abs().max()


def test_arithmetic_change_and_kept_are_as_defined(dcgan, monkeypatch):
    """change = mean after - mean before, and kept = share whose digit class is the one of the
    unedited image. A 10-step G draws one digit only, so the classifier is replaced by ink."""
    g, cfg = load_generator(dcgan)
    pool = sample_z(300, cfg.model.z_dim, cfg.model.z_dist, torch.Generator().manual_seed(0))
    middle = latent.thickness(generate(g, pool)).median()
    fake_class = lambda x: torch.where(latent.thickness(x) > middle, 7, 2)  # noqa: E731
    monkeypatch.setattr(latent, "digit_class", fake_class)
    figures, tensors = latent.arithmetic(g, cfg, "thickness", pool=300, edit=60, seed=0)
    shown = tensors["images"]
    c0 = fake_class(shown["z"])
    assert figures["before"] == pytest.approx(float(latent.thickness(shown["z"]).mean()))
    kept = []
    for name, row in figures["rows"].items():
        assert row["mean"] == pytest.approx(float(latent.thickness(shown[name]).mean()))
        assert row["change"] == pytest.approx(row["mean"] - figures["before"])
        share = float((fake_class(shown[name]) == c0).double().mean())
        assert row["kept"] == pytest.approx(share)
        kept.append(share)
    assert figures["rows"]["z + v"]["change"] > 0 > figures["rows"]["z - v"]["change"]
    assert min(kept) < 1  # some digits did change class


# ------------------------------------------------------- audit: behaviour pinned from the docs

def test_nearly_opposite_end_points_still_follow_the_great_circle():
    """Only a row without one great circle (exactly opposite) walks straight: 0.004 rad short
    of opposite, the middle point is still a quarter turn from z0 at the mean norm."""
    z0, z1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.004]])
    mid = latent.interpolation_path(z0, z1, 3, spherical=True)[0, 1].double()
    omega = math.atan2(0.004, -1.0)  # the angle from z0 to z1
    radius = (1 + math.hypot(1.0, 0.004)) / 2
    expected = radius * torch.tensor([math.cos(omega / 2), math.sin(omega / 2)],
                                     dtype=torch.float64)
    torch.testing.assert_close(mid, expected, atol=1e-4, rtol=0)


def test_conditional_inputs_give_every_row_its_digit():
    """Row r of the z paths is drawn at digit r % K; label row r walks from digit r % K to
    (r + 1) % K, wrapping from 9 to 0. Twelve rows of three steps, by hand."""
    cfg = load_config("cdcgan-mnist")
    rows, steps, eye = 12, 3, torch.eye(10)
    _, y = latent.interpolation_inputs(cfg, rows=rows, steps=steps, seed=0)
    assert y.shape == (2 * rows * steps, 10)
    z_rows = y[: rows * steps].view(rows, steps, 10)
    label_rows = y[rows * steps:].view(rows, steps, 10)
    for r in range(rows):
        a, b = r % 10, (r + 1) % 10
        for s, t in enumerate((0.0, 0.5, 1.0)):
            assert torch.equal(z_rows[r, s], eye[a]), (r, s)
            torch.testing.assert_close(label_rows[r, s], (1 - t) * eye[a] + t * eye[b])


def test_digit_vector_needs_five_samples_of_each_digit():
    """MIN_GROUP = 5: a pool with exactly five of each digit forms the vector, four does not."""
    z = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    classes = torch.tensor([7] * 5 + [9] * 5)
    v, info = latent.attribute_vector(z, classes, "digit", None, digits=(7, 9))
    assert info["groups"] == [5, 5]
    torch.testing.assert_close(v, z[5:].mean(0) - z[:5].mean(0))
    with pytest.raises(GanforgeError, match="4 samples of digit 7 and 5 of digit 9; each needs 5"):
        latent.attribute_vector(z[1:], classes[1:], "digit", None, digits=(7, 9))


def test_attribute_groups_are_the_floor_of_the_quantile_and_skip_small_classes():
    """m = floor(n * quantile) a group; a class whose groups would hold fewer than 2 samples
    adds nothing; v is the plain (unweighted) mean of the per-class differences."""
    gen = torch.Generator().manual_seed(1)
    sizes = {0: 23, 1: 12, 2: 9}  # groups of 4 (not round(4.6) = 5), 2, and 1 -> skipped
    classes = torch.cat([torch.full((n,), c) for c, n in sizes.items()])
    z = torch.randn(len(classes), 5, generator=gen)
    value = torch.rand(len(classes), generator=gen)
    images = (value * 2 - 1)[:, None, None, None].expand(-1, 1, 28, 28)  # ink rises with value
    v, info = latent.attribute_vector(z, classes, "thickness", images, quantile=0.2)
    assert info["groups"] == [4, 2]
    diffs = []
    for c, m in ((0, 4), (1, 2)):
        members = (classes == c).nonzero().flatten()
        order = members[value[members].argsort()]
        diffs.append(z[order[-m:]].mean(0) - z[order[:m]].mean(0))
    torch.testing.assert_close(v, (diffs[0] + diffs[1]) / 2)
    with pytest.raises(GanforgeError, match="no digit class has 2 samples in its top 20%"):
        latent.attribute_vector(z[-9:], classes[-9:], "thickness", images[-9:])


def test_arithmetic_refuses_what_it_cannot_measure(dcgan, tmp_path, capsys):
    png = tmp_path / "x.png"
    cases = [
        (("--attribute", "thickness", "--quantile", 0), "--quantile 0.0 must be in (0, 0.5]"),
        (("--attribute", "thickness", "--quantile", 0.6), "--quantile 0.6 must be in (0, 0.5]"),
        (("--attribute", "slant", "--pool", 19), "--pool 19 must be at least 20"),
        (("--attribute", "slant", "--edit", 0), "--edit 0 at least 1"),
        (("--attribute", "digit", "--digits", "7,7"), "must be two different digits 0..9"),
        (("--attribute", "digit", "--digits", "7,12"), "must be two different digits 0..9"),
    ]
    for argv, words in cases:
        assert cli("arithmetic", dcgan, *argv, "--out", png) == 2, argv
        assert words in one_error_line(capsys)
    assert not png.exists()


def test_digit_arithmetic_goes_from_7_to_9_by_default(dcgan, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(latent, "digit_class", lambda x: torch.ones(len(x), dtype=torch.long))
    assert cli("arithmetic", dcgan, "--attribute", "digit", "--pool", 20,
               "--out", tmp_path / "d.png") == 2
    assert "holds 0 samples of digit 7 and 0 of digit 9" in one_error_line(capsys)


def test_interpolate_defaults_to_8_rows_of_10_steps(dcgan, tmp_path):
    out = tmp_path / "walk.png"
    assert cli("interpolate", dcgan, "--out", out) == 0
    assert Image.open(out).size == grid_size(8, 10)
