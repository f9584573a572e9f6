"""Sample grids, the progress GIF and the training curves. Every picture is written whole or
not at all (files.replacing): a full disk or a kill never leaves one cut off."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from ganforge.errors import whole
from ganforge.files import replacing


def _columns(n: int, nrow: int | None) -> int:
    """Images per row of a grid of n: ``nrow``, or a square's."""
    return math.ceil(math.sqrt(n)) if nrow is None else whole("nrow", nrow, 1)


def grid_image(images: Tensor, nrow: int | None = None) -> Image.Image:
    """(N, C, H, W) floats in [-1, 1] (or uint8 in 0..255) -> a PIL grid, ``nrow`` images per
    row (default: square). C is 1 (grey) or 3 (RGB)."""
    if not torch.is_tensor(images) or images.dim() != 4 or not len(images) \
            or images.shape[1] not in (1, 3) or images.dtype == torch.bool:
        got = (f"{tuple(images.shape)} {images.dtype}" if torch.is_tensor(images)
               else type(images).__name__)
        raise ValueError(f"a grid needs an (N, C, H, W) image tensor with N >= 1 and C = 1 or 3, "
                         f"not {got}; toy points are drawn by viz.toy")
    if images.dtype == torch.uint8:
        images = images.float() / 127.5 - 1
    nrow = _columns(len(images), nrow)
    grid = make_grid(images.float().clamp(-1, 1), nrow=nrow, padding=2, pad_value=-1)
    array = grid.add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[:, :, 0] if images.shape[1] == 1 else array)


def _picture_path(path: str | os.PathLike, what: str, example: str) -> Path:
    """``path`` as a Path, with .png where it has no suffix; a folder is refused, where writing
    would put FOLDER.png beside it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"'{path}' is a folder; give {what} a file name, e.g. "
                         f"'{path / example}'")
    return path if path.suffix else path.with_suffix(".png")


def label_rows(img: Image.Image, labels: list[str]) -> Image.Image:
    """``img`` with a black column on its left that names each of its rows, top to bottom."""
    from PIL import ImageDraw, ImageFont

    row = img.height / len(labels)
    try:
        font = ImageFont.load_default(size=max(10, min(24, round(row / 3))))
    except TypeError:  # Pillow before 10.1 has one size
        font = ImageFont.load_default()
    pad = 6
    width = round(max(ImageDraw.Draw(img).textlength(t, font=font) for t in labels)) + 2 * pad
    out = Image.new(img.mode, (img.width + width, img.height), 0)
    out.paste(img, (width, 0))
    draw = ImageDraw.Draw(out)
    white = 255 if img.mode == "L" else (255, 255, 255)
    for i, text in enumerate(labels):
        draw.text((pad, (i + 0.5) * row), text, fill=white, font=font, anchor="lm")
    return out


def save_grid(images: Tensor, path: Path, nrow: int | None = None, scale: int = 1,
              row_labels: list[str] | None = None) -> None:
    """:func:`grid_image` written to ``path`` (format from the suffix; none gives .png), each
    pixel drawn ``scale`` times as wide and high, with ``row_labels`` (one per row) on its
    left."""
    scale = whole("scale", scale, 1)
    if isinstance(path, (str, os.PathLike)):
        path = _picture_path(path, "the grid", "samples.png")
    img = grid_image(images, nrow)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    if row_labels is not None:
        rows = math.ceil(len(images) / _columns(len(images), nrow))
        if len(row_labels) != rows:
            raise ValueError(f"row_labels names {len(row_labels)} rows; the grid has {rows}")
        img = label_rows(img, row_labels)
    if not isinstance(path, (str, os.PathLike)):  # an open file: the caller's to manage
        img.save(path, format="PNG")
        return
    with replacing(path) as tmp:
        img.save(tmp)


def make_gif(frames: list[Path | Image.Image], out: Path, ms_per_frame: int = 300) -> None:
    """An animated GIF of the frames (image files or PIL images), holding the last one three
    times as long."""
    if not frames:
        return
    images = [(f if isinstance(f, Image.Image) else Image.open(f)).convert(
        "P", palette=Image.Palette.ADAPTIVE) for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 3]
    gif = dict(format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    if not isinstance(out, (str, os.PathLike)):  # an open file: the caller's to manage
        images[0].save(out, **gif)
        return
    with replacing(out) as tmp:
        images[0].save(tmp, **gif)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics.jsonl. A last line cut off mid-write (the process was killed,
    the disk filled up) is left out; a resume from the checkpoint before it writes it again."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        last = [json.loads(lines[-1])] if lines else []
    except json.JSONDecodeError:
        last = []
    return [json.loads(line) for line in lines[:-1]] + last


def figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None,
           **subplots):
    """(Figure, axes) made without pyplot, so a user's matplotlib backend (Jupyter's inline one,
    say) stays as it was; ``fig.savefig`` writes the PNG through Agg by itself."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplots)


def save_figure(fig, path: Path, **savefig) -> None:
    """``fig.savefig(path, **savefig)``, written whole or not at all (an open file directly). A
    name without a suffix gets .png, as matplotlib gives it; a folder is refused."""
    if not isinstance(path, (str, os.PathLike)):
        fig.savefig(path, **{"format": "png", **savefig})
        return
    with replacing(_picture_path(path, "the figure", "figure.png")) as tmp:
        fig.savefig(tmp, **savefig)


# the third panel of curves.png, by the distance estimate a run logs (losses.DISTANCE_ESTIMATES):
# title, the estimate's value when D separates perfectly and D's output that does no better than
# chance (None for a Wasserstein critic, which has neither)
ESTIMATE_PANELS = {
    "js_estimate": ("JS estimate: L(D, G)/2 + log 2", (math.log(2), "log 2"), "D(x) = 1/2"),
    "tv_estimate": ("total variation estimate: 1 - J(D)/2", (1.0, "1"), "output 0"),
    "delta_estimate": ("triangular discrimination estimate: 2 - 8 J(D)", (2.0, "2"),
                       "output 1/2"),
    "w_estimate": ("W1 estimate: E D(x) - E D(G(z))", None, None),
}


def plot_curves(records: list[dict], out: Path) -> None:
    """Losses, D accuracy with the mean D(x) and D(G(z)), and the distance estimate the run's D
    loss gives (``ESTIMATE_PANELS``: JS for cross-entropy as in seed 000, total variation for
    hinge, triangular discrimination for least squares, W1 for a Wasserstein critic) against
    step. A D loss without one gets a note in the third panel."""
    if not records:
        return
    # a run resumed with another D loss logs other statistics from there on: each series is
    # drawn where it was logged, and the third panel shows the estimate of the latest records
    key = next((k for k in [*ESTIMATE_PANELS, *records[-1]] if k.endswith("_estimate")
                and k in records[-1]), None)  # one of the table's, or a registered loss's
    title, top, chance = ESTIMATE_PANELS.get(key, (key or "distance estimate", None, None))
    fig, axes = figure(1, 3, figsize=(15, 4), sharex=True)
    panels = [
        ("losses", [("d_loss", "D loss"), ("g_loss", "G loss")]),
        ("discriminator", [("d_acc", "D accuracy"), ("d_real", "mean D(x)"),
                           ("d_fake", "mean D(G(z))")]),
        (title, [(key, title.split(":")[0])] if key else []),
    ]
    for ax, (name, series) in zip(axes, panels):
        for k, label in series:
            if any(k in r for r in records):  # NaN where not logged: the line breaks there
                ax.plot([r["step"] for r in records], [r.get(k, math.nan) for r in records],
                        label=label, linewidth=1)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if top is not None:
        # The estimate uses the trained D, not D*: a lower bound on the distance that nears its
        # top when D separates perfectly and dips below 0 at steps where D does worse than a
        # constant output would.
        values = [r[key] for r in records if key in r]
        axes[2].axhline(top[0], color="grey", linestyle="--", linewidth=0.8,
                        label=f"{top[1]}: D separates perfectly")
        axes[2].axhline(0.0, color="grey", linestyle=":", linewidth=0.8,
                        label=f"0: D no better than a constant {chance}")
        # room for the legend above the top line
        axes[2].set_ylim(min([0.0] + values) - 0.03 * top[0], 1.37 * top[0])
    elif key is None:
        axes[2].text(0.5, 0.5, "this D loss gives no distance estimate",
                     ha="center", va="center", transform=axes[2].transAxes, fontsize="small")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, out, dpi=100)
