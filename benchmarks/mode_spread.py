"""Where a toy run's samples lie: the share of the 2,500 samples `ganforge eval` scores at
each distance from their nearest mode, in that mode's std, and how wide they spread around it.

    python benchmarks/mode_spread.py RUN [RUN ...]

Within 3 std a sample is high quality (the PacGAN protocol of modes.py). On the grid the modes
are 40 std apart, so a sample more than 20 std from its nearest mode sits between modes.
"""
from __future__ import annotations

import numpy as np

from _doc import parser

EDGES = (0.0, 3.0, 6.0, 10.0, 20.0, np.inf)  # in stds of the nearest mode


def spread(samples: np.ndarray, centers: np.ndarray, stds: np.ndarray) -> dict:
    """samples (N, d), centers (M, d), stds (M,) -> "shares": % of samples per distance band
    of EDGES (distance to the nearest centre over that centre's std), "median" distance, and
    "axis_std": the spread of the samples around their nearest centre per axis, in its std."""
    samples, centers = samples.reshape(len(samples), -1), centers.reshape(len(centers), -1)
    nearest = ((samples[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
    offsets = (samples - centers[nearest]) / stds[nearest, None]
    distance = np.sqrt((offsets ** 2).sum(1))
    shares = [100 * float(np.mean((distance >= lo) & (distance < hi)))
              for lo, hi in zip(EDGES[:-1], EDGES[1:])]
    return {"shares": shares, "median": float(np.median(distance)),
            "axis_std": offsets.std(0).tolist()}


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("runs", nargs="+", help="run folders of toy presets (ring, grid, mixture-1d)")
    args = p.parse_args(argv)

    from ganforge.data import load_data
    from ganforge.errors import GanforgeError
    from ganforge.sampling import fixed_inputs, generate
    from ganforge.train.checkpoint import load_generator

    bands = [f"{lo:g}-{hi:g}" if hi < np.inf else f"{lo:g}+" for lo, hi in zip(EDGES, EDGES[1:])]
    rows = []
    for run in args.runs:
        try:
            g, cfg = load_generator(run)
            data = load_data(cfg)
        except GanforgeError as e:
            p.error(f"{run}: {e}")
        if data.kind != "toy":
            p.error(f"{run}: data.name={cfg.data.name} is not a toy mixture; give a run of a "
                    "ring, grid or mixture-1d preset")
        z, _ = fixed_inputs(cfg, 2500, seed=cfg.train.seed + 999)  # the samples eval scores
        s = spread(generate(g, z).numpy(), data.centers.numpy(), data.stds.numpy())
        rows.append(f"| {run} | " + " | ".join(f"{v:.1f}" for v in s["shares"])
                    + f" | {s['median']:.1f} | " + ", ".join(f"{v:.1f}" for v in s["axis_std"])
                    + " |")
    print("| run | " + " | ".join(f"% at {b} std" for b in bands)
          + " | median (std) | spread per axis (std) |")
    print("| --- " * (len(bands) + 3) + "|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
