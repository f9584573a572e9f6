"""G's latent space: interpolation paths, measured attributes of digits and vector arithmetic.

Interpolation (DCGAN section 6.1; White 2016, "Sampling generative networks"). Each row of the
picture walks from G(z0) to G(z1) in ``steps`` equal steps of t. The straight path is
(1 - t) z0 + t z1; in 100 dimensions its middle cuts through the inside of the shell where
Gaussian noise lives (the midpoint's norm is about 0.7 times the endpoints'). The spherical path
moves the direction along the great circle from z0/|z0| to z1/|z1| (slerp) while the norm goes
linearly from |z0| to |z1|, so it stays on the shell. For conditional models a second set of
rows holds z fixed and walks the label from digit r to digit r + 1 as the soft one-hot
(1 - t) e_r + t e_(r+1). The first and last points of every path are exactly z0 and z1.

Attributes of grey digits (converted to 1x28x28, ink = (x + 1) / 2 in [0, 1]):
    thickness  ink mass: the summed ink of the image, in pixels of full ink
    slant      the shear of the ink's second moments, atan(-mu11 / mu02), in degrees;
               positive leans right (like italics), mu11 and mu02 taken about the centroid
    digit      the class the shipped MNIST classifier gives (metrics/classifier.py)

Vector arithmetic (DCGAN section 6.3, the "smiling woman" figure). From a pool of random z, two
groups are picked by a measured attribute, the difference of their mean vectors is formed and
added to other, fresh z. For thickness and slant the groups are the top and bottom ``quantile``
of the attribute within each digit class (so the vector does not learn "8 minus 1") and the
vector is the mean of the per-class differences; ``orthogonal`` then removes its part along
the directions that separate the classes. For ``digit`` with digits (A, B) it is
mean z(class B) - mean z(class A), added to fresh z that G turns into an A. A random direction
of the same length is the control.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.sampling import generate, sample_z

ATTRIBUTES = ("thickness", "slant", "digit")
MIN_GROUP = 5  # fewest samples a group of the digit attribute may hold


# ----------------------------------------------------------------------------- interpolation

def interpolation_path(z0: Tensor, z1: Tensor, steps: int, spherical: bool = False) -> Tensor:
    """(R, steps, D) points from each row of z0 (R, D) to the same row of z1.

    Straight: (1 - t) z0 + t z1. Spherical: the direction follows the great circle (slerp) and
    the norm goes linearly from |z0| to |z1|; a row without a great circle (an end point at 0,
    or opposite directions) walks straight. Point 0 is z0 and point steps-1 is z1, exactly."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise GanforgeError(f"--steps {steps} must be at least 2 (the two end points)")
    if not (torch.is_tensor(z0) and torch.is_tensor(z1) and z0.is_floating_point()
            and z1.is_floating_point() and z0.ndim == 2 and z0.shape == z1.shape):
        got = [f"{tuple(z.shape)} {z.dtype}" if torch.is_tensor(z) else type(z).__name__
               for z in (z0, z1)]
        raise GanforgeError(f"z0 and z1 must be float tensors (R, D) of the same shape; got "
                            f"{got[0]} and {got[1]}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype)[None, :, None]  # (1, S, 1)
    a, b = z0[:, None], z1[:, None]  # (R, 1, D)
    path = (1 - t) * a + t * b
    if spherical:
        r0, r1 = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
        u0, u1 = a / r0, b / r1
        omega = torch.acos((u0 * u1).sum(-1, keepdim=True).clamp(-1, 1))
        sin = torch.sin(omega)
        parallel = sin < 1e-6  # the great circle degenerates: walk straight, then renormalise
        w0 = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / sin)
        w1 = torch.where(parallel, t, torch.sin(t * omega) / sin)
        u = w0 * u0 + w1 * u1
        curved = ((1 - t) * r0 + t * r1) * u / u.norm(dim=-1, keepdim=True)
        # no direction at 0, no single great circle between opposite directions: keep straight
        straight = (r0 == 0) | (r1 == 0) | (parallel & (omega > math.pi / 2))
        path = torch.where(straight, path, curved)
    path[:, 0], path[:, -1] = z0, z1
    return path


def interpolation_inputs(cfg, rows: int, steps: int, spherical: bool = False,
                         seed: int = 0) -> tuple[Tensor, Tensor | None]:
    """(z, y) for the interpolation picture, row by row (steps images a row).

    Unconditional: ``rows`` paths between random z. Conditional: the same rows with row r at
    digit r % K, then ``rows`` more at a fixed z (the row's z0) walking the label from r to
    r + 1; y is then a (N, K) soft one-hot for every image."""
    if rows < 1:
        raise GanforgeError(f"--rows {rows} must be at least 1")
    gen = torch.Generator().manual_seed(seed)
    z0 = sample_z(rows, cfg.model.z_dim, cfg.model.z_dist, gen)
    z1 = sample_z(rows, cfg.model.z_dim, cfg.model.z_dist, gen)
    z = interpolation_path(z0, z1, steps, spherical).reshape(rows * steps, -1)
    if not cfg.model.conditional:
        return z, None
    eye = torch.eye(cfg.model.num_classes)
    first = torch.arange(rows) % cfg.model.num_classes
    second = (first + 1) % cfg.model.num_classes
    t = torch.linspace(0, 1, steps)[None, :, None]
    y_label = (1 - t) * eye[first][:, None] + t * eye[second][:, None]  # (R, S, K)
    z_label = z0[:, None].expand(rows, steps, -1).reshape(rows * steps, -1)
    y = torch.cat([eye[first].repeat_interleave(steps, 0), y_label.reshape(rows * steps, -1)])
    return torch.cat([z, z_label]), y


def save_interpolation(images: Tensor, steps: int, out: Path, scale: int = 2) -> None:
    """A .png grid (one path a row) or a .gif in which frame s shows step s of every path,
    played forwards and back. ``images`` holds the paths one after another, ``steps`` each."""
    from PIL import Image

    from ganforge.viz import make_gif, save_grid
    from ganforge.viz.plots import grid_image

    out = Path(out)
    if out.suffix.lower() not in (".png", ".gif"):
        raise GanforgeError(f"interpolation output '{out}' must end in .png (a grid) or .gif "
                            "(an animation)")
    if steps < 1 or len(images) % steps:
        raise GanforgeError(f"{len(images)} images do not split into paths of --steps {steps}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        save_grid(images, out, nrow=steps, scale=scale)
        return
    paths = images.reshape(-1, steps, *images.shape[1:])  # (rows, S, C, H, W)
    nrow = math.ceil(math.sqrt(len(paths)))
    frames = []
    for s in range(steps):
        img = grid_image(paths[:, s], nrow=nrow)
        frames.append(img.resize((img.width * scale, img.height * scale),
                                 Image.Resampling.NEAREST))
    make_gif(frames + frames[-2:0:-1], out, ms_per_frame=120)


# ----------------------------------------------------------------------------- attributes

def _ink(images: Tensor) -> Tensor:
    """(N, 28, 28) float64 ink in [0, 1] of (N, C, H, W) images in [-1, 1]."""
    from ganforge.metrics.image import to_digit_images

    return (to_digit_images(images)[:, 0].double() + 1) / 2


def thickness(images: Tensor) -> Tensor:
    """(N,) ink mass: the summed ink of each 28x28 digit, in pixels of full ink."""
    return _ink(images).sum((1, 2))


def slant(images: Tensor) -> Tensor:
    """(N,) slant in degrees from the image moments: atan(-mu11 / mu02) about the ink's
    centroid, rows growing downwards; positive leans right."""
    ink = _ink(images)
    rows = torch.arange(ink.shape[1], dtype=ink.dtype)[None, :, None]
    cols = torch.arange(ink.shape[2], dtype=ink.dtype)[None, None, :]
    mass = ink.sum((1, 2)).clamp_min(1e-8)
    dy = rows - ((ink * rows).sum((1, 2)) / mass)[:, None, None]
    dx = cols - ((ink * cols).sum((1, 2)) / mass)[:, None, None]
    mu11, mu02 = (ink * dx * dy).sum((1, 2)), (ink * dy * dy).sum((1, 2)).clamp_min(1e-8)
    return torch.rad2deg(torch.atan(-mu11 / mu02))


def digit_class(images: Tensor) -> Tensor:
    """(N,) digit the shipped MNIST classifier sees in each image."""
    from ganforge.metrics.image import extract

    return extract(images)[1].argmax(1)


MEASURES = {"thickness": (thickness, "ink mass (pixels)"),
            "slant": (slant, "slant (degrees, + leans right)")}


def check_digit_run(cfg, command: str) -> None:
    """The attributes need 1-channel (MNIST-like) image runs."""
    from ganforge.data import is_toy

    if is_toy(cfg.data.name):
        raise GanforgeError(f"{command} needs an image run; '{cfg.data.name}' is a toy mixture")
    if cfg.data.channels != 1:
        raise GanforgeError(f"{command} measures digits with the MNIST classifier, which needs "
                            f"1-channel images; this run has data.channels={cfg.data.channels} "
                            f"({cfg.data.name})")


# ----------------------------------------------------------------------------- arithmetic

def attribute_vector(z: Tensor, classes: Tensor, attribute: str, images: Tensor,
                     quantile: float = 0.2, digits: tuple[int, int] = (7, 9),
                     orthogonal: bool = False) -> tuple[Tensor, dict]:
    """(vector, {"groups": samples per group}) from a pool of z, their images and digit classes.

    thickness, slant: mean over classes of mean z(top quantile) - mean z(bottom quantile);
    with ``orthogonal`` the part of it that lies in the span of the class means (each class's
    mean z minus the pool's) is removed, so that the vector moves less towards other digits.
    digit: mean z(class digits[1]) - mean z(class digits[0])."""
    if attribute == "digit":
        a, b = digits
        n_a, n_b = int((classes == a).sum()), int((classes == b).sum())
        if min(n_a, n_b) < MIN_GROUP:
            raise GanforgeError(f"the pool holds {n_a} samples of digit {a} and {n_b} of digit {b}"
                                f"; each needs {MIN_GROUP}: raise --pool or choose other --digits")
        return z[classes == b].mean(0) - z[classes == a].mean(0), {"groups": [n_a, n_b]}
    value = MEASURES[attribute][0](images)
    diffs, sizes = [], []
    for c in classes.unique():
        members = (classes == c).nonzero().flatten()
        m = int(len(members) * quantile)
        if m < 2:
            continue
        order = members[value[members].argsort()]
        diffs.append(z[order[-m:]].mean(0) - z[order[:m]].mean(0))
        sizes.append(m)
    if not diffs:
        raise GanforgeError(f"no digit class has 2 samples in its top {quantile:.0%}; "
                            "raise --pool")
    v = torch.stack(diffs).mean(0)
    if orthogonal:
        offsets = torch.stack([z[classes == c].mean(0) - z.mean(0) for c in classes.unique()])
        # The offsets weighted by class size sum to 0, so they span one dimension fewer than
        # there are classes: QR would add a column of round-off, a random direction. Keep the
        # left singular vectors of the span only.
        u, s, _ = torch.linalg.svd(offsets.T, full_matrices=False)  # u: (D, classes)
        basis = u[:, s > 1e-5 * s.max()] if s.max() > 0 else u[:, :0]
        v = v - basis @ (basis.T @ v)
    return v, {"groups": sizes}


def arithmetic(g: nn.Module, cfg, attribute: str, pool: int = 5000, edit: int = 500,
               quantile: float = 0.2, digits: tuple[int, int] = (7, 9), scale: float = 1.0,
               seed: int = 0, orthogonal: bool = False) -> tuple[dict, dict]:
    """Form an attribute vector v from ``pool`` random z and add it to ``edit`` fresh z.

    Returns (figures, tensors). figures: what the command prints, with "rows": for each of
    "z + v", "z - v" (not for digit) and "z + random" (a random direction as long as v) the
    mean attribute (or, for digit, the share classified as digits[1]) and the share whose
    digit class the classifier says was kept. tensors: z, y, v, random and the images of each
    row, so that every figure can be recomputed. ``orthogonal``: see :func:`attribute_vector`."""
    if attribute not in ATTRIBUTES:
        raise GanforgeError(f"--attribute '{attribute}' is not known; choose one of: "
                            f"{', '.join(ATTRIBUTES)}")
    check_digit_run(cfg, "arithmetic")
    if attribute == "digit":
        if cfg.model.conditional:
            raise GanforgeError("--attribute digit needs an unconditional run; a conditional "
                                "run sets the digit with its label (use thickness or slant)")
        if len(digits) != 2 or digits[0] == digits[1] or not all(0 <= d <= 9 for d in digits):
            raise GanforgeError(f"--digits {digits} must be two different digits 0..9, as A,B")
        if orthogonal:
            raise GanforgeError("--orthogonal applies to thickness and slant; the digit vector "
                                "is meant to change the digit")
    if not 0 < quantile <= 0.5:
        raise GanforgeError(f"--quantile {quantile} must be in (0, 0.5]")
    if pool < 20 or edit < 1:
        raise GanforgeError(f"--pool {pool} must be at least 20 and --edit {edit} at least 1")
    k = cfg.model.num_labels
    gen = torch.Generator().manual_seed(seed)
    z_pool = sample_z(pool, cfg.model.z_dim, cfg.model.z_dist, gen)
    z_new = sample_z(edit, cfg.model.z_dim, cfg.model.z_dist, gen)
    y_pool = torch.arange(pool) % k if k else None
    y_new = torch.arange(edit) % k if k else None
    x_pool = generate(g, z_pool, y_pool)
    classes = y_pool if k else digit_class(x_pool)  # a conditional G's digit is its label
    v, info = attribute_vector(z_pool, classes, attribute, x_pool, quantile, digits, orthogonal)
    v = v * scale
    if not torch.isfinite(v.norm()):  # float32 overflows long before --scale stops being finite
        raise GanforgeError(f"--scale {scale:g} makes the vector too long for float32 "
                            f"(|v| = {v.norm():g}); choose a smaller --scale")
    x0 = generate(g, z_new, y_new)
    c0 = digit_class(x0)
    if attribute == "digit":  # edit only the fresh z that G turns into digit A
        keep = c0 == digits[0]
        if not keep.any():
            raise GanforgeError(f"none of the {edit} fresh samples is a {digits[0]}; raise --edit")
        z_new, x0, c0 = z_new[keep], x0[keep], c0[keep]
    rand = torch.randn(len(v), generator=gen, dtype=v.dtype)
    rand = rand / rand.norm() * v.norm()
    deltas = {"z + v": v, "z + random": rand} if attribute == "digit" else \
        {"z + v": v, "z - v": -v, "z + random": rand}
    tensors = {"z": z_new, "y": y_new, "v": v, "random": rand, "images": {"z": x0}}
    if attribute == "digit":
        before = float((c0 == digits[1]).double().mean())
    else:
        before = float(MEASURES[attribute][0](x0).mean())
    rows = {}
    for name, delta in deltas.items():
        x = generate(g, z_new + delta, y_new)
        c = digit_class(x)
        tensors["images"][name] = x
        value = float((c == digits[1]).double().mean()) if attribute == "digit" else \
            float(MEASURES[attribute][0](x).mean())
        rows[name] = {"mean": value, "change": value - before,
                      "kept": float((c == c0).double().mean())}
    figures = {"attribute": attribute, "measure": MEASURES[attribute][1] if attribute != "digit"
               else f"share classified as {digits[1]}", "pool": pool, "quantile": quantile,
               "groups": info["groups"], "vector_norm": float(v.norm()), "scale": scale,
               "orthogonal": orthogonal,
               "n_edited": len(z_new), "before": before, "rows": rows, "seed": seed}
    if attribute == "digit":
        figures["digits"] = list(digits)
    return figures, tensors


def save_arithmetic(tensors: dict, out: Path, columns: int = 10, scale: int = 2) -> list[str]:
    """A grid with one row per edit (z - v, z, z + v; for digit z, z + v) over the first
    ``columns`` edited z, each row named on its left; returns the row names, top to bottom."""
    from ganforge.viz import save_grid

    shown = tensors["images"]
    names = [n for n in ("z - v", "z", "z + v") if n in shown]
    cols = min(columns, len(shown["z"]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(torch.cat([shown[n][:cols] for n in names]), out, nrow=cols, scale=scale,
              row_labels=names)
    return names


def arithmetic_report(f: dict) -> str:
    """The table ``ganforge arithmetic`` prints for the figures of :func:`arithmetic`."""
    digit = f["attribute"] == "digit"
    if digit:
        a, b = f["digits"]
        head = (f"digit {a} -> {b}: v = mean z(G(z) is a {b}) - mean z(G(z) is a {a}) over a "
                f"pool of {f['pool']} ({f['groups'][1]} {b}s and {f['groups'][0]} {a}s)")
    else:
        q = f"{f['quantile']:.0%}"
        ortho = ", made orthogonal to the class means" if f["orthogonal"] else ""
        head = (f"{f['attribute']}: v = mean z(top {q}) - mean z(bottom {q}) of {f['measure']}, "
                f"within each digit class, over a pool of {f['pool']}{ortho}")
    value = (lambda x: f"{100 * x:.1f}%") if digit else (lambda x: f"{x:.2f}")
    drawn = f" that G draws as a {f['digits'][0]}" if digit else ""
    lines = [f"{head}; |v| = {f['vector_norm']:.2f}",
             f"{f['n_edited']} fresh z{drawn}; mean {f['measure']}:",
             f"  {'edit':<20}{'mean':<10}{'change':<20}"
             f"{f'still a {a}' if digit else 'digit kept'}",
             f"  {'z':<20}{value(f['before'])}"]
    for name, row in f["rows"].items():
        if digit:
            change = f"{100 * row['change']:+.1f} pts"
        elif f["attribute"] == "thickness" and f["before"] > 0:  # blank images have no ink
            change = f"{row['change']:+.2f} ({100 * row['change'] / f['before']:+.1f}%)"
        else:
            change = f"{row['change']:+.2f}"
        label = name + (" (|v|)" if name == "z + random" else "")
        lines.append(f"  {label:<20}{value(row['mean']):<10}{change:<20}{100 * row['kept']:.1f}%")
    return "\n".join(lines)
