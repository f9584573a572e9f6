"""Any folder of images (LSUN or CelebA style): resized on the shorter side and centre-cropped
to data.image_size, decoded once and held in memory. Images inside first-level subfolders get
the subfolder's index as their label (torchvision ImageFolder convention). Hidden files and
folders (a leading dot) are skipped; linked folders are followed, each once."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ganforge.data.base import DATASETS, ImageData, data_root, limit_indices
from ganforge.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _to_8bit_rgb_or_grey(img: Image.Image) -> Image.Image:
    """As displayed, in 8 bits: EXIF rotation applied, 16-bit grey scaled (not clipped) to
    0..255, transparency laid over black."""
    img = ImageOps.exif_transpose(img)
    if img.mode == "F":
        raise ValueError("floating-point pixels (Pillow mode F) have no fixed range; save the "
                         "image with 8- or 16-bit pixels")
    if img.mode.startswith("I"):  # I;16*, and I, which Pillow uses for 16-bit PNGs too
        a = np.asarray(img, dtype=np.float64)
        if a.min() < 0 or a.max() > 65535:
            raise ValueError("pixels beyond 16 bits; save the image with 8- or 16-bit pixels")
        return Image.fromarray(np.round(a / 257).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        black = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, img.convert("RGBA")).convert("RGB")
    return img


def _read(path: Path, size: int, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = _to_8bit_rgb_or_grey(img).convert(mode)
            img = ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as e:
        detail = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"cannot read image '{path}' ({type(e).__name__}"
                        f"{': ' + detail[:150] if detail else ''}); accepted: image files Pillow "
                        f"can open ({', '.join(EXTENSIONS)})") from None


def _unreadable(e: OSError) -> None:
    raise DataError(f"cannot read folder '{e.filename}' ({e.strerror})")


def image_files(root: Path) -> list[Path]:
    """The image files under ``root``, sorted; hidden files and folders skipped, linked
    folders followed (each real folder once, so a link loop ends)."""
    files, seen = [], set()
    for folder, dirs, names in os.walk(root, onerror=_unreadable, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # the same walk everywhere
        files += [Path(folder, n) for n in names if not n.startswith(".")
                  and Path(n).suffix.lower() in EXTENSIONS and os.path.isfile(Path(folder, n))]
    return sorted(files)


def _classes_text(classes: list[str]) -> str:
    """How the labels came about; "" is the class of the images directly in the root."""
    folders = len([c for c in classes if c])
    if not folders:
        return "no class folders: one class"
    text = f"{folders} class folder{'s' if folders != 1 else ''}"
    return text + (", and the images directly in it as one more class" if "" in classes else "")


@DATASETS.register("image-folder")
def load_image_folder(cfg) -> ImageData:
    if not cfg.data.root.strip():
        raise DataError("data.root is empty; set it to a folder of images for "
                        "data.name=image-folder")
    root = data_root(cfg)
    if not root.is_dir():
        raise DataError(f"data.root '{root}' is not a folder; set data.root to a folder of "
                        "images for data.name=image-folder")
    files = image_files(root)
    if not files:
        raise DataError(f"no images in '{root}'; accepted extensions: {', '.join(EXTENSIONS)}")
    groups = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else ""
              for p in files]
    classes = sorted(set(groups))
    found = f"{len(files):,} image{'s' if len(files) != 1 else ''}"
    if (keep := limit_indices(len(files), cfg.data.limit)) is not None:  # decode only those
        files, groups = [files[i] for i in keep], [groups[i] for i in keep]
        found += f", of which data.limit keeps {len(files):,} picked at random,"
    mode = "L" if cfg.data.channels == 1 else "RGB"
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(lambda p: _read(p, cfg.data.image_size, mode), files))
    images = torch.from_numpy(np.stack(arrays))
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.tensor([classes.index(g) for g in groups], dtype=torch.int64)
    return ImageData(images.contiguous(), labels, len(classes),
                     f"image-folder: {found} from '{root}' ({_classes_text(classes)})",
                     more="raise data.limit" if keep is not None else "add images to data.root")
