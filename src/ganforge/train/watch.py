"""What the loop shows and measures at intervals: sample pictures and evaluation metrics.
Image runs get a 10x10 grid of fixed noise and the image metrics, in the digit classifier's
feature space for 1-channel data and InceptionV3's for 3-channel data; toy runs get a density /
heat-map frame and the mode metrics (modes covered, % high quality, reverse KL)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.sampling import fixed_inputs, generate
from ganforge.viz import save_grid
from ganforge.viz.plots import figure, save_figure

TOY_FRAME_SAMPLES = 2500


def toy_bounds(data) -> tuple[float, float]:
    """A plotting window that holds every mode with a margin."""
    c = data.centers
    margin = 1.5 if data.dim == 2 else float(3 * data.stds.max() + 2)
    return float(c.min() - margin), float(c.max() + margin)


@torch.no_grad()
def d_output(d: nn.Module, points: torch.Tensor, chunk: int = 1024,
             sigmoid: bool = True) -> np.ndarray:
    """D at (n, dim) points, sigmoid(D(x)) unless sigmoid=False, in eval mode, ``chunk`` points
    a forward pass. A packed D (PacGAN) judges each point as a pack of copies of it; a D with
    minibatch discrimination, whose cost grows with the square of its batch, judges each point
    among its chunk."""
    was = d.training
    d.eval()
    device = next(d.parameters()).device
    pack = getattr(d, "pack", 1)
    squash = torch.sigmoid if sigmoid else torch.as_tensor
    out = np.concatenate([
        squash(d(part.repeat_interleave(pack, dim=0).to(device)).float()).cpu().numpy()
        for part in points.split(chunk)])
    d.train(was)
    return out


def d_view(d: nn.Module, points: torch.Tensor, loss: str) -> tuple[np.ndarray, str, bool]:
    """What a frame draws of D, by ``loss.discriminator``: (values, label, is_probability).
    Cross-entropy: sigmoid(D), D's probability that x is real. Least squares: the raw output,
    whose targets are 0 (fake) and 1 (real). A Wasserstein or hinge critic has no such scale
    (a WGAN critic's values only matter relative to each other; sigmoid of them is flat 0 or 1):
    its raw output, drawn over the range it takes in the window."""
    if loss == "cross-entropy":
        return d_output(d, points), "D(x)", True
    if loss == "least-squares":
        return d_output(d, points, sigmoid=False), "D(x), raw (targets 0 fake, 1 real)", True
    return d_output(d, points, sigmoid=False), "critic D(x), raw (higher = more real)", False


def save_frame(g: nn.Module, d: nn.Module, data, cfg, path: Path, step: int) -> None:
    if data.kind != "toy":
        z, y = fixed_inputs(cfg)
        save_grid(generate(g, z, y), path, nrow=10)
        return
    from ganforge.viz.toy import frame_1d, frame_2d

    z, _ = fixed_inputs(cfg, TOY_FRAME_SAMPLES)
    fake = generate(g, z).numpy()
    lo, hi = toy_bounds(data)
    loss = cfg.loss.discriminator
    if data.dim == 1:
        xs = torch.linspace(lo, hi, 600)[:, None]
        d_x, label, probability = d_view(d, xs, loss)
        if not probability:  # share the density axis: the critic scaled to 0..1 over the window
            d_x = (d_x - d_x.min()) / max(float(d_x.max() - d_x.min()), 1e-12)
            label = "critic D(x), scaled to 0..1 over the window"
        frame_1d(path, xs[:, 0].numpy(), data.density(xs).numpy(), fake[:, 0], d_x, step,
                 d_label=label, d_star=probability)
    else:
        axis = torch.linspace(lo, hi, 160)
        gx, gy = torch.meshgrid(axis, axis, indexing="xy")
        pts = torch.stack([gx.flatten(), gy.flatten()], 1)
        real = data.sample(TOY_FRAME_SAMPLES, torch.Generator().manual_seed(0)).numpy()
        d_x, label, probability = d_view(d, pts, loss)
        frame_2d(path, real, fake, gx.numpy(), gy.numpy(), d_x.reshape(gx.shape), step,
                 d_label=label, d_range=(0.0, 1.0) if probability else None)

IMAGE_METRICS = ("fid", "kid", "is", "digit_kl", "precision", "recall", "cond_acc")
STACKED_METRICS = ("modes", "kl", "digit_kl")
TOY_METRICS = ("modes", "hq", "kl")
EVAL_KEYS = frozenset(IMAGE_METRICS + STACKED_METRICS + TOY_METRICS)  # all evaluate() gives


def evaluate(g: nn.Module, data, cfg, n: int | None = None) -> dict:
    """Metrics of G's samples on n samples (default train.eval_samples).

    Toy mixtures: the PacGAN mode metrics (modes, hq, kl against the modes' weights).
    1-channel images (MNIST-like): classifier FID, KID, score, precision and recall against the
    real training data, plus the conditional accuracy of conditional models (flat floats, see
    metrics/image.py).
    Stacked MNIST: modes covered of 1,000 and KL against uniform (metrics/stacked.py).
    3-channel images: FID, KID, Inception score, precision and recall in InceptionV3's space
    (metrics/inception.py; :func:`check_evaluation` loads it before training starts)."""
    n = n or cfg.train.eval_samples
    if cfg.data.name == "stacked-mnist":  # modes of 1,000 and KL, each channel classified
        from ganforge.metrics.stacked import stacked_metrics

        z, y = fixed_inputs(cfg, n, seed=cfg.train.seed + 999)
        result = stacked_metrics(generate(g, z, y))
        return {k: result[k] for k in STACKED_METRICS}
    if data.kind != "toy":
        from ganforge.metrics.image import score_images

        fake, real, labels, reference = image_sets(g, data, cfg, n)
        inception = _needs_inception(data, cfg)  # the digit classifier knows no photographs
        result = score_images(fake, real, labels=labels, reference=reference,
                              extractor="inception" if inception else "classifier",
                              device=next(g.parameters()).device)
        return {k: result[k] for k in IMAGE_METRICS if k in result}
    from ganforge.metrics.modes import mode_metrics

    z, _ = fixed_inputs(cfg, n, seed=cfg.train.seed + 999)
    result = mode_metrics(generate(g, z).numpy(), data.centers.numpy(), data.stds.numpy(),
                          weights=data.weights.numpy())
    return {k: result[k] for k in TOY_METRICS}


def image_sets(g: nn.Module, data, cfg, n: int):
    """What an image evaluation scores, in the loop and in ``ganforge eval``: (G's n samples of
    the fixed evaluation noise, train.seed + 999; as many real training images, at most all,
    since k-NN precision / recall assume sets of equal size; the labels the digit classifier
    can check, or None; the name the real set's features are cached under). The real draw is
    seeded, so the cached features are reused."""
    from ganforge.metrics.image import reference_subset

    z, y = fixed_inputs(cfg, n, seed=cfg.train.seed + 999)
    return (generate(g, z, y), reference_subset(data.images, n), digit_labels(cfg, y),
            f"{cfg.data.name}-train")


def digit_labels(cfg, y):
    """The requested labels ``y`` where the digit classifier can check them (conditional
    accuracy): a conditional MNIST run's digits; None for any other data's classes."""
    return y if cfg.data.name == "mnist" and cfg.model.num_classes == 10 else None


def _needs_inception(data, cfg) -> bool:
    return data.kind != "toy" and cfg.data.name != "stacked-mnist" and data.images.shape[1] != 1


def check_evaluation(data, cfg) -> None:
    """Fail before the run folder is written, not at the first evaluation: ``train.eval_every``
    on images needs at least 4 samples and 4 real images (k-NN precision and recall with k = 3),
    and on 3-channel images torch-fidelity and InceptionV3's weights (one-line errors)."""
    images = cfg.train.eval_every and data.kind != "toy" and cfg.data.name != "stacked-mnist"
    if images and cfg.train.eval_samples < 4:
        raise ConfigError(f"train.eval_samples={cfg.train.eval_samples} is too few for the image "
                          "metrics of train.eval_every; choose 4 or more (default 2500)")
    if images and len(data.images) < 4:
        raise DataError(f"train.eval_every needs at least 4 real images to score against; the "
                        f"data has {len(data.images)} (raise data.limit or set train.eval_every=0)")
    if cfg.train.eval_every and _needs_inception(data, cfg):
        from ganforge.metrics.image import feature_extractor

        try:
            feature_extractor("inception")  # loads it once, for every evaluation of the run
        except GanforgeError as e:
            raise GanforgeError(f"train.eval_every on 3-channel images measures in InceptionV3's "
                                f"feature space (or set train.eval_every=0): {e}") from None


def save_toy_samples(samples: np.ndarray, data, path: Path) -> None:
    """A plain picture of toy samples: a histogram over p_data (1-D) or a scatter (2-D), in the
    window of the training frames; the legend counts the samples that fall outside it."""
    lo, hi = toy_bounds(data)
    outside = int((~((samples >= lo) & (samples <= hi)).all(axis=1)).sum())
    label = f"{len(samples):,} samples" + (f" ({outside:,} outside the plot)" if outside else "")
    fig, ax = figure(figsize=(6, 5 if data.dim == 1 else 6))
    if data.dim == 1:
        xs = torch.linspace(lo, hi, 600)
        ax.plot(xs, data.density(xs[:, None]), label="p_data", color="tab:blue")
        ax.hist(samples[:, 0], bins=120, range=(lo, hi), density=True, alpha=0.6,
                color="tab:orange", label=label)
    else:
        ax.scatter(data.centers[:, 0], data.centers[:, 1], marker="x", color="tab:blue",
                   label="mode centres")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="tab:orange",
                   label=label)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
    ax.set_xlim(lo, hi)
    ax.legend(loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
