"""In-memory image data and the minibatch sampler the training loop uses."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.errors import DataError
from ganforge.plugins import call
from ganforge.registry import Registry


@dataclass
class ImageData:
    images: Tensor  # (N, C, H, W) uint8
    labels: Tensor  # (N,) int64
    num_classes: int
    source: str  # one line saying what was loaded, shown to the user
    kind: str = "image"
    more: str = "add data"  # what gives more items, for the error when there are too few

    def __post_init__(self):
        """Files of one dataset that do not belong together fail here, at load time, rather
        than at some step after the run folder was written."""
        name = self.source.split(":", 1)[0]
        if len(self.labels) != len(self.images):
            raise DataError(f"{name}: {len(self.images):,} images but {len(self.labels):,} "
                            "labels; the image and label files must come from one dataset")
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) \
                < self.num_classes:
            raise DataError(f"{name}: labels must be in 0..{self.num_classes - 1}, found "
                            f"{int(self.labels.min())}..{int(self.labels.max())}")

    def batches(self, batch_size: int, device: torch.device, seed: int) -> "Batches":
        return Batches(self, batch_size, device, seed)


DATASETS: Registry[Callable[..., ImageData]] = Registry("dataset")


def fit_images(images: Tensor, image_size: int, channels: int) -> Tensor:
    """Resize (N, C, H, W) uint8 images to a square image_size and convert grey <-> RGB."""
    if images.shape[1] != channels:
        if channels == 1:  # ITU-R 601 luma
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * w).sum(1, keepdim=True).round().to(torch.uint8)
        else:
            images = images.expand(-1, 3, -1, -1).contiguous()
    if images.shape[-2:] != (image_size, image_size):
        x = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear",
                          antialias=True, align_corners=False)
        images = x.round().clamp(0, 255).to(torch.uint8)
    return images.contiguous()


def load_data(cfg):
    """Load ``cfg.data.name``: images fitted to ``data.image_size`` and ``data.channels``, or a
    toy mixture (see toy.py). Both offer ``batches(batch_size, device, seed)``. The config is
    checked again first, so a setting changed by hand fails as an override would."""
    from ganforge.config import Config, validate

    if not isinstance(cfg, Config):
        raise TypeError(f"load_data needs a Config, e.g. ganforge.load_config('demo'), not "
                        f"{type(cfg).__name__}")
    validate(cfg)
    data = call(f"data.name={cfg.data.name}: the dataset function", DATASETS.get(cfg.data.name),
                cfg, source=DATASETS.module(cfg.data.name))
    _check_loaded(data, f"data.name={cfg.data.name}")
    if data.kind != "image":
        return data
    images, labels, source, more = data.images, data.labels, data.source, data.more
    if (keep := limit_indices(len(images), cfg.data.limit)) is not None:
        images, labels = images[keep], labels[keep]
        source += f"; data.limit keeps {len(keep):,} of them, picked at random"
        more = "raise data.limit"
    before = images.shape[1:]
    images = fit_images(images, cfg.data.image_size, cfg.data.channels)
    if images.shape[1:] != before:  # CIFAR-10 under the default 1-channel 28 px, say: tell
        source += (f"; {before[0]}x{before[1]}x{before[2]} images fitted to "
                   f"data.channels={cfg.data.channels}, data.image_size={cfg.data.image_size}")
    return ImageData(images, labels.long(), data.num_classes, source, more=more)


def _check_loaded(data, name: str) -> None:
    """What a dataset function must give (one registered outside ganforge may not): a toy
    mixture, or ImageData of uint8 (N, C, H, W) images with C = 1 or 3 and integer labels."""
    if getattr(data, "kind", None) == "toy" and not isinstance(data, ImageData):
        return
    if not isinstance(data, ImageData):
        raise DataError(f"{name}: the dataset must return a ganforge.data.base.ImageData, not "
                        f"{type(data).__name__}")
    x, y = data.images, data.labels
    if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4 or \
            x.shape[1] not in (1, 3):
        got = f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise DataError(f"{name}: images must be a uint8 tensor (N, C, H, W) of 0..255 with "
                        f"C = 1 or 3, not {got}")
    if not torch.is_tensor(y) or y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = f"{tuple(y.shape)} {y.dtype}" if torch.is_tensor(y) else type(y).__name__
        raise DataError(f"{name}: labels must be an integer tensor (N,), not {got}")


def data_root(cfg) -> Path:
    """``data.root`` as a folder path; a leading ~ is the home folder (``data.root=~/x`` reaches
    us as typed: the shell expands no ~ after '=')."""
    return Path(cfg.data.root).expanduser()


def limit_indices(n: int, limit: int | None) -> Tensor | None:
    """Which of n items ``data.limit`` keeps, in their order: a random choice that is the same
    for every run (seed 0, whatever train.seed), so class-sorted data keeps all its classes.
    None when nothing is dropped."""
    if limit is None or limit >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].sort().values


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]; float data (toy points) passes through."""
    if images.dtype != torch.uint8:
        return images
    return images.float().div_(127.5).sub_(1.0)


class Batches:
    """Endless shuffled minibatches: each epoch is a fresh permutation from a seeded generator.

    The data lives on the training device as uint8; only the sampled batch is converted.
    ``state_dict`` captures the generator, the current permutation and the position, so a
    resumed run draws exactly the batches an uninterrupted run would have drawn.
    """

    def __init__(self, data: ImageData, batch_size: int, device: torch.device, seed: int):
        if len(data.images) < batch_size:
            toy = data.images.ndim == 2  # a fixed set of toy points (data.toy.fixed_size)
            raise DataError(f"the dataset has {len(data.images)} {'points' if toy else 'images'}"
                            f", fewer than train.batch_size={batch_size}; lower the batch size "
                            f"or {data.more}")
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self._shuffle()

    def _shuffle(self) -> None:
        self.perm = torch.randperm(len(self.images), generator=self.gen)
        self.pos = 0
        self._perm = self.perm.to(self.images.device)  # one copy per epoch, not one per batch

    def next(self) -> tuple[Tensor, Tensor]:
        if self.pos + self.batch_size > len(self.perm):  # drop the ragged end, reshuffle
            self._shuffle()
        idx = self._perm[self.pos: self.pos + self.batch_size]
        self.pos += self.batch_size
        return to_unit_range(self.images[idx]), self.labels[idx]

    def state_dict(self) -> dict[str, Tensor]:
        return {"gen": self.gen.get_state(), "perm": self.perm,
                "pos": torch.tensor(self.pos, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        from ganforge.errors import CheckpointError

        n = len(state["perm"]) if "perm" in state else None
        if n != len(self.images):
            raise CheckpointError(
                "the checkpoint's data order does not fit the data: "
                + (f"it shuffles {n:,} items, the data has {len(self.images):,}" if n is not None
                   else "it drew fresh toy samples, the data is a fixed set")
                + "; resume with the run's data settings (data.limit, data.toy.fixed_size, ...)")
        self.gen.set_state(state["gen"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])
        self._perm = self.perm.to(self.images.device)
