"""Any folder of images (LSUN or CelebA style): resized on the shorter side and centre-cropped
to data.image_size, decoded once and held in memory. Images inside first-level subfolders get
the subfolder's index as their label (torchvision ImageFolder convention)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ganforge.data.base import DATASETS, ImageData
from ganforge.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _read(path: Path, size: int, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = ImageOps.fit(img.convert(mode), (size, size), Image.Resampling.BICUBIC)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read image '{path}' ({type(e).__name__}); accepted: image "
                        f"files Pillow can open ({', '.join(EXTENSIONS)})") from None


@DATASETS.register("image-folder")
def load_image_folder(cfg) -> ImageData:
    root = Path(cfg.data.root)
    if not root.is_dir():
        raise DataError(f"data.root '{root}' is not a folder; set data.root to a folder of "
                        "images for data.name=image-folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if cfg.data.limit is not None:
        files = files[: cfg.data.limit]
    if not files:
        raise DataError(f"no images in '{root}'; accepted extensions: {', '.join(EXTENSIONS)}")
    groups = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else ""
              for p in files]
    classes = sorted(set(groups))
    mode = "L" if cfg.data.channels == 1 else "RGB"
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(lambda p: _read(p, cfg.data.image_size, mode), files))
    images = torch.from_numpy(np.stack(arrays))
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.tensor([classes.index(g) for g in groups], dtype=torch.int64)
    return ImageData(images.contiguous(), labels, len(classes),
                     f"image-folder: {len(files):,} images from '{root}' "
                     f"({len(classes)} class folder{'s' if len(classes) != 1 else ''})")
