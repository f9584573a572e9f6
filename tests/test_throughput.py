"""benchmarks/throughput.py and its reference loop on tiny data: the reference really trains (D
runs three times per step, weights move, losses stay finite), ganforge's side runs, and the
table has its columns. No wall-clock figure is checked."""
from __future__ import annotations

import math
import sys
from types import SimpleNamespace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import reference_loop  # noqa: E402
import throughput  # noqa: E402

SMALL = ["model.g_width=8", "model.d_width=8", "model.g_hidden=[16,32]",
         "model.d_hidden=[32,16]", "train.batch_size=8", "data.limit=64"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return throughput.make_folder("dcgan-mnist", tmp_path_factory.mktemp("digits"), limit=40)


def test_folder_holds_grey_png_digits_by_class(folder):
    files = sorted(folder.rglob("*.png"))
    assert len(files) == 40 and {p.parent.name for p in files} <= {str(i) for i in range(10)}
    loader = reference_loop.make_loader(folder, 28, 1, batch_size=8, num_workers=0)
    real, _ = next(iter(loader))
    assert real.shape == (8, 1, 28, 28) and real.min() >= -1 and real.max() <= 1


@pytest.mark.parametrize("preset", ["dcgan-mnist", "gan-mnist"])
def test_reference_loop_trains_with_three_d_calls_per_step(folder, preset, monkeypatch):
    from ganforge.models import build_models

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cfg = throughput.preset_config(preset, None, SMALL)
    torch.manual_seed(0)
    g, d = build_models(cfg)
    before = {k: v.clone() for m in (g, d) for k, v in m.state_dict().items()}
    calls = []
    d.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    r = reference_loop.run_reference(cfg, folder, steps=2, warmup=0, num_workers=2,
                                     models=(g, d))
    assert len(r["history"]) == 2 and len(calls) == 3 * 2
    assert r["losses_finite"] and r["images"] == 2 * 8
    assert torch.backends.cudnn.benchmark  # the example's setting
    after = {k: v for m in (g, d) for k, v in m.state_dict().items()}
    for name in ("weight", "bias"):
        changed = [k for k in before if k.endswith(name) and not torch.equal(before[k], after[k])]
        assert changed, f"no {name} changed"
    assert all(not torch.equal(before[k], after[k])
               for k in before if k.endswith(".weight"))  # every layer of G and D was updated


def test_ganforge_side_and_table(folder, no_data_dir):
    gf = throughput.measure_ganforge("dcgan-mnist", None, steps=2, warmup=1, device="cpu",
                                     overrides=[*SMALL, f"data.root={no_data_dir}"])
    assert gf["images"] == 2 * 8 and gf["losses_finite"] and gf["peak_memory"] > 0
    assert math.isfinite(gf["images_per_s"])
    cfg = throughput.preset_config("dcgan-mnist", None, SMALL)
    ref = reference_loop.run_reference(cfg, folder, steps=2, warmup=1, num_workers=0)
    ref["peak_memory"] = 123 * 2**20
    rows = [{"preset": p, "batch": 8, "ganforge": gf, "reference": ref}
            for p in ("dcgan-mnist", "dcgan-64")]
    table = throughput.format_table(rows, "cpu").splitlines()
    assert table[0] == "| " + " | ".join(throughput.COLUMNS) + " |"
    assert len(table) == 4 and all(line.count("|") == len(throughput.COLUMNS) + 1 for line in table)
    assert "123 MiB" in table[2] and table[3].endswith("| - |")  # no TFLOP/s figure on the CPU
    float(throughput.format_table(rows, "cuda").splitlines()[3].split("|")[-2])  # dcgan-64 on CUDA


def test_profile_rows_are_per_step_differences():
    import profile_step

    def avg(key, count, us):
        return SimpleNamespace(key=key, count=count, self_cpu_time_total=us)

    short = [avg("aten::mm", 3, 300.0), avg("aten::add", 2, 50.0), avg("setup", 1, 9e6)]
    long = [avg("aten::mm", 7, 1100.0), avg("aten::add", 6, 40.0), avg("setup", 1, 9e6),
            avg("aten::new", 4, 20.0)]
    rows = profile_step.per_step(short, long, 4, "cpu")
    assert rows == [("aten::mm", 1.0, 200.0), ("aten::new", 1.0, 5.0), ("aten::add", 1.0, 0.0)]
    table = profile_step.top_table(rows, 4, "cpu", top=2).splitlines()
    assert table[0].startswith("self CPU time: 0.205 ms a step") and len(table) == 6
    assert table[4] == "| `aten::mm` | 1.0 | 0.200 | 97.6% |"
    # on CUDA the kernels' self device time ranks the rows (CPU-only rows have none)
    dev = [SimpleNamespace(key="kernel", count=8, self_device_time_total=800.0,
                           self_cpu_time_total=0.0),
           SimpleNamespace(key="cudaGraphLaunch", count=2, self_device_time_total=0.0,
                           self_cpu_time_total=90.0)]
    rows = profile_step.per_step([], dev, 2, "cuda")
    assert rows[0] == ("kernel", 4.0, 400.0) and rows[1] == ("cudaGraphLaunch", 1.0, 0.0)
    assert profile_step.top_table(rows, 2, "cuda").startswith("self device time: 0.400 ms")


def test_profile_counts_the_convolutions_of_one_training_step(no_data_dir):
    import profile_step

    from ganforge.models import build_models

    over = [*SMALL, f"data.root={no_data_dir}"]
    rows = profile_step.measure("dcgan-mnist", 3, 1, "cpu", over)
    calls = {name: n for name, n, _ in rows}
    g, d = build_models(throughput.preset_config("dcgan-mnist", None, over))
    convs = [sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in x.modules())
             for x in (g, d)]
    # G's backward once, D's three times: D(real) and D(fake) for D, D(G(z)) for G
    assert calls["aten::convolution_backward"] == convs[0] + 3 * convs[1]


def test_profile_script_rejects_a_bad_override(capsys):
    import profile_step

    with pytest.raises(SystemExit) as e:
        profile_step.main(["dcgan-mnist", "--set", "train.nope=1"])
    assert e.value.code == 2 and "unknown key 'train.nope'" in capsys.readouterr().err


def test_settings_rows_say_what_they_set():
    import settings

    assert settings.overrides("graph", "bf16", "channels_last") == [
        "train.cuda_graph=enabled", "train.compile=false", "train.precision=bf16",
        "train.memory_format=channels_last"]
    assert settings.overrides("compile", "fp32", "contiguous")[:2] == [
        "train.cuda_graph=disabled", "train.compile=true"]
    # row 0 is what "auto" gives on each device; the CPU has no CUDA graph to ask for
    assert settings.rows_for("cuda")[0] == ("graph", "bf16", "channels_last")
    assert settings.rows_for("cpu")[0] == ("eager", "fp32", "contiguous")
    assert not any(step.startswith("graph") for step, _, _ in settings.rows_for("cpu"))
    assert [step for step, _, _ in settings.rows_for("cuda")].count(
        "graph, no cuDNN autotuning") == 1


def test_settings_script_times_rows_and_reports_a_failed_one(no_data_dir, capsys):
    import settings

    over = [*SMALL, f"data.root={no_data_dir}"]
    settings.main(["--preset", "gan-mnist", "--steps", "2", "--warmup", "1", "--rows", "2", "0",
                   "--repeat", "2", "--set", *over])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("`python benchmarks/settings.py --preset gan-mnist")
    rows = [line.split(" | ") for line in out if line.startswith("| eager")]
    assert [r[1:3] for r in rows] == [["bf16", "contiguous"], ["fp32", "contiguous"]]
    assert rows[1][5] == "1.00x" and rows[0][5].endswith("x") and rows[0][7] == "True |"
    low, high = (float(v.replace(",", "")) for v in rows[0][4].split(" to "))
    assert low <= float(rows[0][3].replace(",", "")) <= high  # the median of two runs
    settings.main(["--preset", "gan-mnist", "--rows", "1", "--set", "train.nope=1"])
    failed = capsys.readouterr().out.splitlines()[-1]
    assert failed.startswith("| eager | fp32 | channels_last | failed: ")
    assert "unknown key 'train.nope'" in failed and failed.endswith("| | | | |")


def test_settings_script_rejects_a_row_it_does_not_have(capsys):
    import settings

    with pytest.raises(SystemExit) as e:
        settings.main(["--rows", "4"])
    assert e.value.code == 2 and "positions 0 to 3 on cpu" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        settings.main(["--repeat", "0"])
    assert e.value.code == 2 and "--repeat 0 must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("script, argv, words", [
    ("modes", ["--steps", "0"], "argument --steps: 0 must be at least 1"),
    ("modes", ["--seeds", "0"], "argument --seeds: 0 must be at least 1"),
    ("modes", ["--workers", "0"], "argument --workers: 0 must be at least 1"),
    ("modes", ["--presets", "ring-gan:x"], "--presets ring-gan:x: the seeds after ':' are wrong"),
    ("modes", ["--presets", "nosuch:1"], "unknown preset 'nosuch'"),
    ("quality", ["--plan", "gan-mnist"], "--plan gan-mnist: give PRESET=STEPS"),
    ("quality", ["--plan", "nosuch=10"], "unknown preset 'nosuch'"),
    ("preset_speed", ["--steps", "10"], "argument --steps: 10 must be at least 20"),
    ("preset_speed", ["--device", "gpu"], "train.device='gpu' is not known"),
    ("throughput", ["--steps", "0"], "argument --steps: 0 must be at least 1"),
    ("throughput", ["--warmup", "-1"], "argument --warmup: -1 must be at least 0"),
    ("settings", ["--steps", "-3"], "argument --steps: -3 must be at least 1"),
    ("settings", ["--set", "train.precision=fp64"], "--set train.precision: every row sets its"),
    ("mode_spread", ["/no/such/run"], "/no/such/run: /no/such/run/config.yaml does not exist"),
])
def test_benchmark_scripts_refuse_bad_arguments_before_running(script, argv, words, capsys):
    """One line and exit code 2 before anything trains, so a --write can never put an empty
    or half-failed table into BENCHMARKS.md."""
    assert words in refusal(script, argv, capsys)


def refusal(script: str, argv: list[str], capsys) -> str:
    """The last stderr line of benchmarks/SCRIPT.py's main(argv), which must exit with code 2."""
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(script).main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    return err.strip().splitlines()[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
@pytest.mark.parametrize("script", ["throughput", "settings", "preset_speed"])
def test_benchmark_scripts_say_there_is_no_gpu(script, capsys):
    assert refusal(script, ["--device", "cuda"], capsys).endswith(
        "--device cuda: torch sees no CUDA GPU here; use --device cpu")


@pytest.mark.parametrize("side", ["folder", "ganforge", "reference"])
def test_the_children_get_arguments_their_parser_takes(side, monkeypatch):
    """The parent starts each side as `throughput.py --child SIDE ...`; the folder child has no
    steps to time, so it gets none (--steps 0 would be refused)."""
    cmds, parsed = [], []
    monkeypatch.setattr(throughput, "child_result", lambda cmd, what: cmds.append(cmd) or {})
    monkeypatch.setattr(throughput, "_child", parsed.append)
    throughput.in_subprocess(side, "gan-mnist", "/tmp/f", *([] if side == "folder" else [5, 1]))
    throughput.main(cmds[0][2:])
    assert parsed[0].child == side and parsed[0].folder == "/tmp/f"
    assert (parsed[0].steps, parsed[0].warmup) == ((None, None) if side == "folder" else (5, 1))


def test_cpu_name_reads_the_model_name_and_falls_back_to_the_architecture(tmp_path):
    import platform

    from _doc import cpu_name

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) "
                    "Processor\nflags\t\t: fpu\n")
    assert cpu_name(info) == "Intel(R) Xeon(R) Processor"
    info.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # some ARM kernels name no model
    assert cpu_name(info) == (platform.processor() or platform.machine())
    assert cpu_name(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_mode_spread_bands_in_the_nearest_modes_std():
    """Each sample's distance to its nearest centre, over that centre's std: 0.5, 5, 8, 15 and
    30 std put one sample in each band."""
    import numpy as np

    import mode_spread

    centers, stds = np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([0.1, 0.2])
    samples = np.array([[0.05, 0.0], [0.0, 0.5], [3.6, 0.0], [0.0, 1.5], [0.0, -3.0]])
    s = mode_spread.spread(samples, centers, stds)
    assert s["shares"] == pytest.approx([20.0] * 5)
    assert s["median"] == pytest.approx(8.0)
    offsets = np.array([[0.5, 0], [0, 5], [8, 0], [0, 15], [0, -30]])
    assert s["axis_std"] == pytest.approx(offsets.std(0).tolist())
