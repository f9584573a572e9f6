"""Noise, the fixed progress-grid inputs, and generation in eval mode."""
import numpy as np
import pytest
import torch

from ganforge.config import load_config
from ganforge.models import build_models
from ganforge.sampling import fixed_inputs, generate, sample_z


def test_sample_z_distributions():
    gen = torch.Generator().manual_seed(0)
    n = sample_z(4000, 8, "normal", gen)
    assert n.shape == (4000, 8)
    assert n.mean().item() == pytest.approx(0, abs=0.02)
    assert n.std().item() == pytest.approx(1, abs=0.02)
    u = sample_z(4000, 8, "uniform", gen)
    assert u.min() >= -1 and u.max() < 1
    assert u.mean().item() == pytest.approx(0, abs=0.02)
    assert u.std().item() == pytest.approx(2 / 12 ** 0.5, abs=0.02)  # U(-1, 1): std 1/sqrt(3)
    a = sample_z(3, 2, "normal", torch.Generator().manual_seed(7))
    assert torch.equal(a, sample_z(3, 2, "normal", torch.Generator().manual_seed(7)))


def test_fixed_inputs():
    cfg = load_config("demo", ["model.z_dim=5"])
    z, y = fixed_inputs(cfg, 12)
    assert z.shape == (12, 5) and y is None
    assert torch.equal(z, fixed_inputs(cfg, 12)[0])  # the same every call
    assert not torch.equal(z, fixed_inputs(cfg, 12, seed=3)[0])
    other = load_config("demo", ["model.z_dim=5", "train.seed=1"])
    assert not torch.equal(z, fixed_inputs(other, 12)[0])  # follows train.seed


def test_fixed_inputs_take_every_seed_the_config_takes():
    # a negative train.seed is valid, and so is the evaluation noise's train.seed + 999
    low = load_config("demo", [f"train.seed={-2 ** 63}"])
    high = load_config("demo", [f"train.seed={2 ** 63 - 1}"])
    for cfg in (low, high):
        z = fixed_inputs(cfg, 4)[0]
        assert torch.equal(z, fixed_inputs(cfg, 4)[0])
        assert torch.equal(fixed_inputs(cfg, 4, seed=cfg.train.seed + 999)[0],
                           fixed_inputs(cfg, 4, seed=cfg.train.seed + 999)[0])
    assert not torch.equal(fixed_inputs(low, 4, seed=-1)[0], fixed_inputs(low, 4, seed=1)[0])


def test_fixed_inputs_conditional_rows_are_classes():
    cfg = load_config("cdcgan-mnist", ["model.z_dim=5"])
    z, y = fixed_inputs(cfg, 100)
    assert y.tolist() == [r for r in range(10) for _ in range(10)]
    assert z.min() >= -1 and z.max() < 1  # cdcgan-mnist draws z ~ U(-1, 1)
    _, y = fixed_inputs(cfg, 7, label=4)
    assert y.tolist() == [4] * 7


def test_fixed_inputs_conditional_rows_wrap_around_the_classes():
    """Past 100 inputs the rows of ten go on cycling through the classes: row r shows class
    r % num_classes, so 300 inputs hold every class 30 times."""
    cfg = load_config("cdcgan-mnist", ["model.z_dim=5"])
    _, y = fixed_inputs(cfg, 300)
    assert y.tolist() == [r % 10 for r in range(30) for _ in range(10)]
    assert y[100:110].tolist() == [0] * 10 and y[290:].tolist() == [9] * 10
    assert torch.bincount(y, minlength=10).tolist() == [30] * 10
    _, y = fixed_inputs(cfg, 250)
    assert y[240:].tolist() == [4] * 10 and y[:100].tolist() == fixed_inputs(cfg, 100)[1].tolist()


def test_generate_in_eval_mode_and_in_chunks():
    torch.manual_seed(0)
    cfg = load_config("cdcgan-mnist", ["model.g_width=8", "model.z_dim=5"])
    g, _ = build_models(cfg)
    g.train()
    z, y = fixed_inputs(cfg, 20)
    whole = generate(g, z, y)
    assert g.training  # mode restored
    assert whole.shape == (20, 1, 28, 28) and whole.device.type == "cpu"
    assert torch.equal(whole, generate(g, z, y, batch=6))  # eval mode: no batch coupling
    g.eval()
    with torch.no_grad():
        assert torch.equal(whole[:3], g(z[:3], y[:3]))


def test_generate_and_fixed_inputs_reject_wrong_labels_and_counts():
    cond = load_config("cdcgan-mnist", ["model.g_width=8", "model.d_width=8"])
    plain = load_config("demo", ["model.g_width=8", "model.d_width=8"])
    (g_cond, _), (g_plain, _) = build_models(cond), build_models(plain)
    z, y = fixed_inputs(cond, 4)
    with pytest.raises(ValueError, match="conditional: pass labels y"):
        generate(g_cond, z, None)
    with pytest.raises(ValueError, match="unconditional and takes no labels"):
        generate(g_plain, fixed_inputs(plain, 4)[0], y)
    for n in (0, -3):
        with pytest.raises(ValueError, match="it must be a whole number >= 1"):
            fixed_inputs(plain, n)


def test_generate_checks_z_and_labels_and_restores_the_mode():
    cond = load_config("cdcgan-mnist", ["model.g_width=8", "model.d_width=8", "model.z_dim=5"])
    g, _ = build_models(cond)
    g.train()
    z, y = fixed_inputs(cond, 4)
    bad_z = [torch.zeros(4, 6), torch.zeros(5), torch.zeros(0, 5), z.numpy(),
             torch.zeros(4, 5, dtype=torch.int64)]
    for bad in bad_z:
        with pytest.raises(ValueError, match=r"z must be a float tensor of shape \(N, 5\)"):
            generate(g, bad, y)
    for bad in (y[:3], y + 10, -y - 1, y.float(), torch.zeros(4, 9)):
        with pytest.raises(ValueError, match="one integer label in 0..9 .* of the 4 rows of z"):
            generate(g, z, bad)
    with pytest.raises(ValueError, match="batch=0"):
        generate(g, z, y, batch=0)
    for not_g in ("runs/x", torch.nn.ReLU()):
        with pytest.raises(TypeError, match="generate needs a generator with weights"):
            generate(not_g, z, y)
    assert g.training  # every error above left the mode as it was
    assert torch.equal(generate(g, z, y.int()), generate(g, z, y))  # any integer labels
    g.eval()
    assert not generate(g, z, y).isnan().any() and not g.training
    g_bf16 = build_models(cond)[0].to(torch.bfloat16)  # z is cast to the model's dtype
    assert generate(g_bf16, z, y).dtype == torch.float32


def test_fixed_inputs_and_sample_z_reject_what_they_cannot_honour():
    plain = load_config("demo")
    cond = load_config("cdcgan-mnist")
    with pytest.raises(ValueError, match="unconditional and takes none"):
        fixed_inputs(plain, 5, label=3)
    for label in (10, -1, 2.0, True):
        with pytest.raises(ValueError, match=r"label=.*: it must be a whole number in 0..9"):
            fixed_inputs(cond, 5, label=label)
    for n in (2.5, 0, True):
        with pytest.raises(ValueError, match=r"n=.*: it must be a whole number >= 1"):
            fixed_inputs(plain, n)
    for seed in ("1", -2**63 - 1, 2**64, 1.0):
        with pytest.raises(ValueError, match=r"seed=.*: it must be a whole number in -9223"):
            fixed_inputs(plain, 2, seed=seed)
    # numpy and one-element tensor integers are whole numbers too
    z, y = fixed_inputs(cond, np.int64(3), seed=np.int64(1), label=torch.tensor(4))
    assert torch.equal(z, fixed_inputs(cond, 3, seed=1)[0]) and y.tolist() == [4, 4, 4]
    with pytest.raises(TypeError, match="needs the run's Config"):
        fixed_inputs("runs/x", 2)
    with pytest.raises(ValueError, match="dist='gauss' is not known; choose normal or uniform"):
        sample_z(3, 4, "gauss")


def test_fixed_inputs_default_to_the_grid_seed():
    """Without a seed the grid's noise comes from train.seed + 12345 (the noise of the progress
    grids of every run, so that grids of runs from other versions stay comparable)."""
    cfg = load_config("demo", ["model.z_dim=5", "train.seed=3"])
    z, _ = fixed_inputs(cfg, 6)
    expected = sample_z(6, 5, cfg.model.z_dist, torch.Generator().manual_seed(3 + 12345))
    assert torch.equal(z, expected)
    assert torch.equal(z, fixed_inputs(cfg, 6, seed=3 + 12345)[0])
