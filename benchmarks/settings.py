"""What each fast-path setting is worth: ganforge's loop on one preset, one row per setting.

    python benchmarks/settings.py --device cuda --steps 400 --warmup 50   # dcgan-64, every row
    python benchmarks/settings.py --preset dcgan-mnist --repeat 3         # the CPU rows, 3 times
    python benchmarks/settings.py --preset dcgan-mnist --rows 0 1         # two CPU rows
    python benchmarks/settings.py --device cuda --set train.batch_size=256  # overrides, every row
    python benchmarks/settings.py --device cuda --write    # also replace the table in BENCHMARKS.md

Each row trains the preset the way throughput.py times ganforge's side (``measure_ganforge``:
no gradient penalty, dcgan-64 on the 64 px digit folder, the rate from the loop's logged clock
after ``--warmup`` steps) with ``train.cuda_graph``, ``train.compile``, ``train.precision`` and
``train.memory_format`` set as the row says, in a fresh process each. On CUDA the second row
is the default without cuDNN autotuning: the loop turns ``torch.backends.cudnn.benchmark`` on,
and that row's process turns it off again after. A row that fails (torch.compile without a working
compiler, say) is reported with its error and the others still run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import throughput  # noqa: E402  (imports no torch at module level)
from _doc import at_least, check_device, parser, replace_block  # noqa: E402

# (step, precision, memory format); "graph" replays the step as a CUDA graph, "compile" runs
# G and D through torch.compile, "eager" neither. The first row of each list is the default.
CUDA_ROWS = [("graph", "bf16", "channels_last"),
             ("graph, no cuDNN autotuning", "bf16", "channels_last"),
             ("graph", "bf16", "contiguous"), ("graph", "fp32", "channels_last"),
             ("graph", "fp32", "contiguous"),
             ("eager", "fp32", "contiguous"), ("eager", "bf16", "contiguous"),
             ("eager", "bf16", "channels_last"),
             ("compile", "fp32", "contiguous"), ("compile", "bf16", "contiguous")]
CPU_ROWS = [("eager", "fp32", "contiguous"), ("eager", "fp32", "channels_last"),
            ("eager", "bf16", "contiguous"), ("compile", "fp32", "contiguous")]


def rows_for(device: str) -> list[tuple[str, str, str]]:
    return CUDA_ROWS if device.startswith("cuda") else CPU_ROWS


def overrides(step: str, precision: str, fmt: str) -> list[str]:
    """The config overrides of a row."""
    graph = "enabled" if step.startswith("graph") else "disabled"
    return [f"train.cuda_graph={graph}", f"train.compile={str(step == 'compile').lower()}",
            f"train.precision={precision}", f"train.memory_format={fmt}"]


def _child(args) -> None:
    import torch

    if args.no_autotune:  # the loop sets cudnn.benchmark in fast_path; undo it right after
        from ganforge.train import loop

        fast_path = loop.fast_path

        def without_autotuning(t, device):
            out = fast_path(t, device)
            torch.backends.cudnn.benchmark = False
            return out

        loop.fast_path = without_autotuning
    result = throughput.measure_ganforge(args.preset, args.folder, args.steps, args.warmup,
                                         args.device, args.set)
    print("RESULT " + json.dumps({**result, "env": throughput.env_of(args.device)}), flush=True)


def measure_row(row: tuple[str, str, str], preset: str, folder: str, steps: int, warmup: int,
                device: str, extra: list[str] = ()) -> dict:
    """One row's ``measure_ganforge`` result in a fresh process (``extra`` overrides first),
    or {"error": the last line of its stderr}."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--preset", preset,
           "--folder", folder, "--steps", str(steps), "--warmup", str(warmup),
           "--device", device, "--set", *extra, *overrides(*row),
           *(["--no-autotune"] if "no cuDNN" in row[0] else [])]
    try:
        return throughput.child_result(cmd, f"{preset} {row}")
    except RuntimeError as e:
        lines = [x for x in str(e).splitlines() if x.strip()]
        return {"error": lines[-1][:160] if len(lines) > 1 else "no output"}


def combine(runs: list[dict]) -> dict:
    """One row's runs (``--repeat``): the median rate and the range, or the first error."""
    errors = [r for r in runs if "error" in r]
    if errors:
        return errors[0]
    rates = sorted(r["images_per_s"] for r in runs)
    return {"images_per_s": statistics.median(rates), "rates": rates, "env": runs[0]["env"],
            "peak_memory": max(r["peak_memory"] for r in runs),
            "losses_finite": all(r["losses_finite"] for r in runs)}


def format_table(rows: list[tuple[int, tuple[str, str, str], dict]]) -> str:
    """Markdown table of (position, row, ``combine``d result); row 0, the default, is the one
    the others are compared with (when it ran)."""
    base = next((r.get("images_per_s") for i, _, r in rows if i == 0), None)
    lines = ["| step | precision | memory format | images/s (median) | range | "
             "against the default | peak memory | losses finite |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for _, (step, precision, fmt), r in rows:
        if "error" in r:
            lines.append(f"| {step} | {precision} | {fmt} | failed: {r['error']} | | | | |")
            continue
        ratio = f"{r['images_per_s'] / base:.2f}x" if base else "-"
        spread = (f"{r['rates'][0]:,.0f} to {r['rates'][-1]:,.0f}" if len(r["rates"]) > 1
                  else "-")
        lines.append(f"| {step} | {precision} | {fmt} | {r['images_per_s']:,.0f} | {spread} | "
                     f"{ratio} | {r['peak_memory'] / 2**20:,.0f} MiB | {r['losses_finite']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = parser(__doc__)
    p.add_argument("--preset", default="dcgan-64", choices=throughput.PRESETS)
    p.add_argument("--steps", type=at_least(1),
                   help="timed steps per row (default: throughput.py's)")
    p.add_argument("--warmup", type=at_least(0),
                   help="untimed steps first (default: throughput.py's)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--rows", nargs="+", type=int, metavar="I",
                   help="only these rows, by position (0 is the default: "
                        f"{len(CPU_ROWS)} rows on the CPU, {len(CUDA_ROWS)} on CUDA)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for every row, before the row's own")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="time every row N times, in N rounds through the rows, and report the "
                        "median (a CPU's speed drifts from minute to minute)")
    p.add_argument("--write", action="store_true", help="replace the table in BENCHMARKS.md")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-autotune", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    check_device(p, args.device)
    table_rows = rows_for(args.device)
    chosen = args.rows if args.rows is not None else range(len(table_rows))
    if any(not 0 <= i < len(table_rows) for i in chosen):
        p.error(f"--rows takes positions 0 to {len(table_rows) - 1} on {args.device}")
    if args.repeat < 1:
        p.error(f"--repeat {args.repeat} must be at least 1")
    rows_set = {o.split("=")[0] for o in overrides(*CPU_ROWS[0])}
    if taken := sorted({o.split("=")[0] for o in args.set} & rows_set):
        p.error(f"--set {', '.join(taken)}: every row sets its own (the table's columns); "
                "choose rows with --rows instead")
    steps = args.steps if args.steps is not None else throughput.DEFAULT_STEPS[args.preset][0]
    warmup = args.warmup if args.warmup is not None else throughput.DEFAULT_STEPS[args.preset][1]

    t_start, load = time.time(), os.getloadavg()[0]
    runs: dict[int, list[dict]] = {i: [] for i in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(Path(tmp) / "images")
        if args.preset == "dcgan-64":  # the others train on the bundled digits
            throughput.in_subprocess("folder", args.preset, folder)
        for _ in range(args.repeat):  # rounds, so that a slow minute hits every row alike
            for i in chosen:
                row = table_rows[i]
                r = measure_row(row, args.preset, folder, steps, warmup, args.device, args.set)
                runs[i].append(r)
                print(f"{', '.join(row)}: " + (f"failed: {r['error']}" if "error" in r
                                                else f"{r['images_per_s']:,.0f} images/s"),
                      file=sys.stderr, flush=True)
    results = [(i, table_rows[i], combine(runs[i])) for i in chosen]
    env = next((r["env"] for _, _, r in results if "env" in r),
               {"device": args.device, "torch": "?", "threads": "?", "gpu": None})
    head = throughput.header(argv, env, time.time() - t_start, load, script="settings.py")
    text = head + "\n\n" + format_table(results)
    print(text)
    if args.write:
        replace_block("settings-gpu" if args.device == "cuda" else "settings", text)


if __name__ == "__main__":
    main()
