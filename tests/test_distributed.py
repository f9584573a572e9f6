"""Data-parallel training under torchrun: 2 CPU processes (gloo) on a tiny config.

Each launch starts real processes through `python -m torch.distributed.run`; tests/dist_worker.py
is the script every rank runs (it calls the ganforge command and reports back through files).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import read_metrics
from helpers import assert_bitwise_equal, ckpt, without_time
from safetensors.torch import load_file

from ganforge.train import dist

WORKER = Path(__file__).with_name("dist_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, nproc: int = 2, accelerate: bool = False) -> str:
    """Launch dist_worker.py on nproc ranks with torchrun (or ``accelerate launch``, given its
    training settings); returns stdout and stderr (asserts success)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    if accelerate:  # HF_HOME: no accelerate config file of the user's applies
        env["HF_HOME"] = str(Path(args[1]).parent / "hf-home")
        launch = ["accelerate.commands.launch", "--multi_gpu", f"--num_processes={nproc}",
                  "--num_machines=1", "--mixed_precision=bf16", "--dynamo_backend=inductor",
                  "--main_process_ip=127.0.0.1", f"--main_process_port={free_port()}"]
    else:
        launch = ["torch.distributed.run", f"--nproc_per_node={nproc}",
                  "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    proc = subprocess.run([sys.executable, "-m", *launch, str(WORKER), *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_helpers_are_no_ops_in_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cpu = torch.device("cpu")
    assert dist.setup(cpu) == cpu and dist.world_size() == 1 and dist.is_main()
    x = torch.arange(6.0)
    stats = {"a": x[0]}
    assert dist.shard(x) is x and dist.average_stats(stats) is stats
    assert dist.gather_stats(stats)["a"].tolist() == [0.0]
    assert dist.check_batch(15) == 15 and dist.any_rank(True) and not dist.any_rank(False)
    lin = torch.nn.Linear(2, 2)
    lin.weight.grad = torch.ones(2, 2)
    dist.average_grads(lin)
    dist.average_buffers(lin)
    assert torch.equal(lin.weight.grad, torch.ones(2, 2))
    dist.barrier()
    dist.teardown()


def test_helpers_slice_and_average_across_two_ranks(tmp_path):
    torchrun("unit", tmp_path)  # the checks themselves run in dist_worker.unit()
    assert (tmp_path / "rank0.ok").exists() and (tmp_path / "rank1.ok").exists()


def _train(tmp_path: Path, name: str, *argv, accelerate: bool = False) -> tuple[str, Path]:
    dump = tmp_path / f"dump-{name}"
    output = torchrun("train", dump, "train", *argv, accelerate=accelerate)
    for r in (0, 1):
        assert json.loads((dump / f"rank{r}_writes.json").read_text()) == [], \
            f"rank {r} wrote into the test folder"
        for which in ("generator", "discriminator"):  # the same weights on every rank
            assert_bitwise_equal(load_file(dump / f"rank0_{which}.safetensors"),
                                 load_file(dump / f"rank{r}_{which}.safetensors"))
    return output, dump


def test_two_processes_train_alike_and_resume_exactly(tiny, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    output, dump = _train(tmp_path, "straight", "demo", *tiny(20), "--out", straight)
    assert output.count("done: 20 steps") == 1  # only rank 0 logs
    assert "processes: 2, 8 of the batch of 16 each" in output
    files = sorted(str(p.relative_to(straight)) for p in straight.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith("checkpoints/")] == [
        "config.yaml", "curves.png", "metrics.jsonl", "progress.gif",
        "samples/step_000010.png", "samples/step_000020.png"]
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == \
        ["step_000010", "step_000020"]
    records = read_metrics(straight)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(0.0 <= r["d_acc"] <= 1.0 and r["d_loss"] > 0 for r in records)
    for which in ("generator", "discriminator"):  # rank 0 saved what every rank holds
        assert_bitwise_equal(ckpt(straight, 20, which),
                             load_file(dump / f"rank1_{which}.safetensors"))

    # stopped between logging steps: the resume carries on each rank's own logging window
    _train(tmp_path, "split", "demo", *tiny(13), "--out", split)
    output, _ = _train(tmp_path, "resume", "--resume", split, "train.steps=20")
    assert "steps 13 -> 20" in output
    for name in ("generator", "discriminator", "optim_g", "optim_d", "state"):
        assert_bitwise_equal(ckpt(straight, 20, name), ckpt(split, 20, name))
    assert without_time(read_metrics(split)) == without_time(records)


def test_accelerate_launch_trains_as_torchrun_does(tiny, tmp_path):
    """`accelerate launch --multi_gpu` starts its processes through torchrun: the same run, and
    a line for each of its own training settings, which ganforge does not use."""
    pytest.importorskip("accelerate")
    argv = ["demo", *tiny(10)]
    plain, by_torchrun = _train(tmp_path, "torchrun", *argv, "--out", tmp_path / "torchrun")
    output, by_accelerate = _train(tmp_path, "accelerate", *argv, "--out", tmp_path / "acc",
                                   accelerate=True)
    assert "processes: 2, 8 of the batch of 16 each" in output
    assert "note: accelerate launch --mixed_precision=bf16 is not used by ganforge; set " \
           "train.precision (auto, fp32, bf16) instead" in output
    assert "note: accelerate launch --dynamo_backend=inductor is not used by ganforge; set " \
           "train.compile=true instead" in output
    assert "note:" not in plain
    for which in ("generator", "discriminator"):
        assert_bitwise_equal(load_file(by_torchrun / f"rank0_{which}.safetensors"),
                             load_file(by_accelerate / f"rank0_{which}.safetensors"))


def test_two_processes_draw_instance_noise_for_the_global_batch(tmp_path):
    """A toy run has no batch norm, so 2 processes with the batch split between them train what
    one process trains, up to the order of float sums, when every random draw (z and the
    instance noise) is made for the global batch and sliced."""
    args = ["ring-gan", "model.g_hidden=[16]", "model.d_hidden=[16]", "train.batch_size=16",
            "train.steps=10", "loss.instance_noise=0.5", "train.progress=false",
            "train.tensorboard=false", "train.checkpoint_every=10", "train.sample_every=10",
            "optim.decay=none"]
    _train(tmp_path, "two", *args, "--out", tmp_path / "two")
    from ganforge.cli import main

    assert main(["train", *args, "train.device=cpu", "--out", str(tmp_path / "one")]) == 0
    for which in ("generator", "discriminator"):
        two, one = ckpt(tmp_path / "two", 10, which), ckpt(tmp_path / "one", 10, which)
        for k in one:
            torch.testing.assert_close(two[k], one[k], rtol=0, atol=1e-5)
