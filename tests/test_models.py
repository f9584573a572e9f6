"""Tiny models: output shapes, the DCGAN architecture rules of seed 003, conditioning,
initialisation and seeded determinism."""
import pytest
import torch
from torch import nn

from ganforge.config import load_config
from ganforge.models import MODELS, build_models
from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.models.layers import concat_label_maps, one_hot

POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
           nn.MaxPool1d, nn.AvgPool1d, nn.LPPool2d, nn.FractionalMaxPool2d)


def cfg_for(arch="dcgan", size=28, channels=1, conditional=False, **model):
    ov = [f"model.arch={arch}", f"data.image_size={size}", f"data.channels={channels}",
          f"model.conditional={str(conditional).lower()}", "model.g_width=8", "model.d_width=8",
          "model.g_hidden=[16,32]", "model.d_hidden=[32,16]", "model.z_dim=12"]
    ov += [f"model.{k}={v}" for k, v in model.items()]
    return load_config("demo", ov)


def labels(n, k=10):
    return torch.arange(n) % k


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("conditional", [False, True])
def test_output_shapes(arch, size, channels, conditional):
    cfg = cfg_for(arch, size, channels, conditional)
    g, d = build_models(cfg)
    b = 3
    z = torch.randn(b, cfg.model.z_dim)
    y = labels(b) if conditional else None
    x = g(z, y)
    assert x.shape == (b, channels, size, size)
    assert x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    logits = d(x, y)
    assert logits.shape == (b,)


def modules(m, kind):
    return [x for x in m.modules() if isinstance(x, kind)]


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_architecture_rules(size, channels):
    g, d = build_models(cfg_for("dcgan", size, channels))
    for net in (g, d):
        assert not modules(net, POOLING)
        assert not modules(net, nn.Linear)
    # G: transposed convolutions only, ReLU inside, tanh at the output
    assert modules(g, nn.ConvTranspose2d) and not modules(g, nn.Conv2d)
    assert modules(g, nn.ReLU) and not modules(g, nn.LeakyReLU)
    assert isinstance(list(g.modules())[-1], nn.Tanh)
    assert len(modules(g, nn.Tanh)) == 1
    # D: convolutions with stride 2 except the last (s0 x s0 -> one logit); LeakyReLU(0.2)
    convs = modules(d, nn.Conv2d)
    assert not modules(d, nn.ConvTranspose2d)
    assert all(c.stride == (2, 2) for c in convs[:-1])
    s0 = 7 if size == 28 else 4
    assert convs[-1].kernel_size == (s0, s0) and convs[-1].out_channels == 1
    leaky = modules(d, nn.LeakyReLU)
    assert len(leaky) == len(convs) - 1
    assert all(m.negative_slope == pytest.approx(0.2) for m in leaky)
    assert not modules(d, nn.ReLU) and not modules(d, nn.Tanh) and not modules(d, nn.Sigmoid)
    # batch norm: not on G's output block nor D's input block, on every other hidden block
    g_blocks, d_blocks = list(g.blocks), list(d.blocks)
    assert not modules(g_blocks[-1], nn.BatchNorm2d)
    assert all(len(modules(b, nn.BatchNorm2d)) == 1 for b in g_blocks[:-1])
    assert not modules(d_blocks[0], nn.BatchNorm2d)
    assert all(len(modules(b, nn.BatchNorm2d)) == 1 for b in d_blocks[1:-1])
    assert not modules(d_blocks[-1], nn.BatchNorm2d)
    # convolutions followed by batch norm need no bias
    for b in g_blocks[:-1] + d_blocks[1:-1]:
        assert modules(b, (nn.Conv2d, nn.ConvTranspose2d))[0].bias is None


@pytest.mark.parametrize("size,layers", [(28, [(7, 16), (14, 8), (28, 1)]),
                                         (32, [(4, 32), (8, 16), (16, 8), (32, 1)]),
                                         (64, [(4, 64), (8, 32), (16, 16), (32, 8), (64, 1)])])
def test_dcgan_generator_feature_maps(size, layers):
    """Each transposed convolution doubles the side and halves the channels."""
    g = DCGANGenerator(z_dim=12, channels=1, image_size=size, width=8)
    h = torch.randn(2, 12)[:, :, None, None]
    sides = []
    for block in g.blocks:
        h = block(h)
        sides.append((h.shape[-1], h.shape[1]))
    assert sides == layers


def test_dcgan_64_first_layer_is_4x4x1024():
    g, d = build_models(load_config("dcgan-64", ["model.g_width=128"]))
    first = g.blocks[0]
    h = first(torch.randn(2, 100, 1, 1))
    assert h.shape == (2, 1024, 4, 4)
    assert first[0].weight.shape == (100, 1024, 4, 4)
    # D mirrors it: 64 -> 32 -> 16 -> 8 -> 4 with 64, 128, 256, 512 channels
    feats = d.features(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8),
                                                   (512, 4, 4), (1, 1, 1)]


def test_weights_drawn_from_n_0_002():
    torch.manual_seed(0)
    g, d = build_models(load_config("dcgan-64", ["model.g_width=128"]))
    w = g.blocks[0][0].weight  # 100 * 1024 * 16 = 1.6M weights
    assert w.std().item() == pytest.approx(0.02, rel=0.01)
    assert abs(w.mean().item()) < 1e-3
    w = d.blocks[2][0].weight  # (256, 128, 4, 4)
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.BatchNorm2d):
            assert m.weight.mean().item() == pytest.approx(1.0, abs=0.01)
            assert 0 < m.weight.std().item() < 0.05
            assert torch.count_nonzero(m.bias) == 0


def test_mlp_weights_drawn_from_n_0_002():
    torch.manual_seed(0)
    g, _ = build_models(load_config("gan-mnist"))  # default 256-512-1024
    big = max(modules(g, nn.Linear), key=lambda m: m.weight.numel())
    assert big.weight.numel() > 500_000
    assert big.weight.std().item() == pytest.approx(0.02, rel=0.01)


def test_mlp_architecture():
    g, d = build_models(cfg_for("mlp", 28, 1))
    g_lin, d_lin = modules(g, nn.Linear), modules(d, nn.Linear)
    assert [(m.in_features, m.out_features) for m in g_lin] == [(12, 16), (16, 32), (32, 784)]
    assert [(m.in_features, m.out_features) for m in d_lin] == [(784, 32), (32, 16), (16, 1)]
    assert isinstance(list(g.modules())[-1], nn.Tanh)
    assert all(m.negative_slope == pytest.approx(0.2) for m in modules(d, nn.LeakyReLU))


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
@pytest.mark.parametrize("size", [28, 64])
def test_conditioning_changes_outputs(arch, size):
    torch.manual_seed(0)
    g, d = build_models(cfg_for(arch, size, 1, conditional=True))
    g.eval(), d.eval()  # running statistics: each sample is independent of the batch
    z = torch.randn(4, 12)
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    with torch.no_grad():
        x0, x1 = g(z, y0), g(z, y1)
        assert not torch.allclose(x0, x1)
        assert torch.equal(g(z, y0), x0)  # and is otherwise deterministic
        assert not torch.allclose(d(x0, y0), d(x0, y1))


@pytest.mark.parametrize("size", [28, 32, 64])
def test_conditional_layers_take_the_label(size):
    k = 10
    g, d = build_models(cfg_for("dcgan", size, 3, conditional=True))
    g_convs, d_convs = modules(g, nn.ConvTranspose2d), modules(d, nn.Conv2d)
    assert g_convs[0].in_channels == 12 + k
    for prev, conv in zip(g_convs, g_convs[1:]):
        assert conv.in_channels == prev.out_channels + k
    assert d_convs[0].in_channels == 3 + k
    for prev, conv in zip(d_convs, d_convs[1:]):
        assert conv.in_channels == prev.out_channels + k
    # and an unconditional model does not
    g, d = build_models(cfg_for("dcgan", size, 3, conditional=False))
    convs = modules(g, nn.ConvTranspose2d)
    assert convs[1].in_channels == convs[0].out_channels
    assert modules(d, nn.Conv2d)[0].in_channels == 3


def test_conditional_mlp_inputs_take_the_label():
    g, d = build_models(cfg_for("mlp", 28, 1, conditional=True, num_classes=5))
    assert modules(g, nn.Linear)[0].in_features == 12 + 5
    assert modules(d, nn.Linear)[0].in_features == 784 + 5


def test_num_classes_is_respected():
    g, d = build_models(cfg_for("dcgan", 28, 1, conditional=True, num_classes=3))
    assert modules(g, nn.ConvTranspose2d)[0].in_channels == 12 + 3
    g.eval()
    with torch.no_grad():
        assert g(torch.randn(2, 12), torch.tensor([0, 2])).shape == (2, 1, 28, 28)


def test_label_helpers():
    y = torch.tensor([2, 0])
    oh = one_hot(y, 3, torch.zeros(1, dtype=torch.float64))
    assert oh.dtype == torch.float64
    assert oh.tolist() == [[0, 0, 1], [1, 0, 0]]
    h = torch.zeros(2, 4, 5, 6)
    out = concat_label_maps(h, oh.float())
    assert out.shape == (2, 7, 5, 6)
    assert torch.equal(out[0, 4:, 3, 2], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(out[1, 4:, 0, 5], torch.tensor([1.0, 0.0, 0.0]))


def state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_seeded_build_is_deterministic(arch):
    cfg = cfg_for(arch, 32, 3, conditional=True)
    torch.manual_seed(123)
    g1, d1 = build_models(cfg)
    torch.manual_seed(123)
    g2, d2 = build_models(cfg)
    torch.manual_seed(124)
    g3, _ = build_models(cfg)
    for a, b in ((g1, g2), (d1, d2)):
        sa, sb = state(a), state(b)
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    s1, s3 = state(g1), state(g3)
    assert any(not torch.equal(s1[k], s3[k]) for k in s1 if s1[k].is_floating_point())


def test_registered_architectures():
    assert {"dcgan", "mlp"} <= set(MODELS.names())


def test_discriminator_features_end_in_the_logits():
    d = DCGANDiscriminator(channels=1, image_size=28, width=8).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        feats = d.features(x)
        assert len(feats) == len(d.blocks)
        assert feats[0].shape == (2, 8, 14, 14)
        assert torch.equal(d(x), feats[-1].flatten(1).squeeze(1))


# ------------------------------------------------------- audit: behaviour pinned from the docs

def test_mlp_init_zeroes_every_bias_and_draws_batch_norm_scales_around_1():
    """Seed 003 for the image MLP too: Linear biases 0, BatchNorm1d scales from N(1, 0.02)."""
    torch.manual_seed(0)
    g, d = build_models(load_config("gan-mnist"))  # hidden 256-512-1024: 1,792 scales
    for m in modules(g, nn.Linear) + modules(d, nn.Linear):
        assert torch.count_nonzero(m.bias) == 0
    scales = torch.cat([m.weight.detach() for m in modules(g, nn.BatchNorm1d)])
    assert len(scales) == 256 + 512 + 1024
    assert scales.mean().item() == pytest.approx(1.0, abs=0.003)
    assert scales.std().item() == pytest.approx(0.02, rel=0.1)
    assert all(torch.count_nonzero(m.bias) == 0 for m in modules(g, nn.BatchNorm1d))


def test_toy_models_keep_pytorchs_default_init():
    """toy-mlp layers are not re-drawn from N(0, 0.02): PyTorch's default keeps every weight
    and bias within 1/sqrt(fan_in), with biases that are not 0."""
    torch.manual_seed(0)
    g, d = build_models(load_config("ring-gan"))
    for m in modules(g, nn.Linear) + modules(d, nn.Linear):
        bound = m.in_features ** -0.5
        assert m.weight.abs().max() <= bound and m.bias.abs().max() <= bound
        assert torch.count_nonzero(m.bias) == m.out_features
        assert m.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.25)


def test_mlp_generator_hidden_layers_are_linear_leakyrelu_batchnorm():
    """The Keras-GAN order of seed 000: Dense, LeakyReLU(0.2), BatchNormalization per layer."""
    g, _ = build_models(cfg_for("mlp", 28, 1))
    kinds = [type(m) for m in g.net]
    hidden = [nn.Linear, nn.LeakyReLU, nn.BatchNorm1d]
    assert kinds == hidden * 2 + [nn.Linear, nn.Tanh]


@pytest.mark.parametrize("size", [28, 64])
def test_dcgan_output_is_tanh_of_a_biased_transposed_convolution(size):
    """G's last block is a transposed convolution with a bias (no batch norm follows it) and
    tanh; D's input and logit convolutions have biases too."""
    torch.manual_seed(0)
    g, d = build_models(cfg_for("dcgan", size, 1))
    last = g.blocks[-1][0]
    assert isinstance(last, nn.ConvTranspose2d) and last.bias is not None
    assert d.blocks[0][0].bias is not None and d.blocks[-1].bias is not None
    g.eval()
    z = torch.randn(3, 12)
    with torch.no_grad():
        h = z[:, :, None, None]
        for block in g.blocks[:-1]:
            h = block(h)
        last.bias.fill_(3.0)  # a bias large enough that tanh nearly saturates
        pre = last(h)
        out = g(z)
    assert torch.equal(out, torch.tanh(pre))
    assert out.max() > 0.99
