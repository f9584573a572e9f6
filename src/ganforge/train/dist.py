"""Data-parallel training with ``torch.distributed`` under ``torchrun`` (one process per rank).
``accelerate launch --multi_gpu`` starts its processes through torchrun, so it works the same.

Without torchrun's environment (or with ``WORLD_SIZE=1``) every function here is a no-op that
hands its input back unchanged, so single-process training runs exactly the code it always did.

With W processes nothing is broadcast. Every rank seeds alike and builds the same models, draws
the whole global batch of real data and noise from the same seeded generators (so every RNG
stays identical on every rank, and checkpoints hold the same kind of state as a single-process
run), and trains on its own slice ``[rank*b, (rank+1)*b)``, b = batch_size / W. Gradients are
averaged before each optimiser step, batch-norm running statistics at the end of every step, so
weights and buffers are the same on every rank at all times. Backend: gloo on the CPU, nccl on
CUDA (device ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ganforge.errors import ConfigError

_device = torch.device("cpu")  # where collectives' temporary tensors live (CUDA for nccl)
_owned = False  # this module started the process group, so it also ends it


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    """Rank 0: the only process that writes the run folder and logs."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group if launched by it; returns the device this rank trains on."""
    global _device, _owned
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _owned = True
    _device = device
    return device


def teardown() -> None:
    global _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False


# `accelerate launch` hands its training settings to the script in environment variables, for
# Accelerate's own Accelerator; ganforge trains without one and has its own keys for them
_ACCELERATE_SETTINGS = {
    "ACCELERATE_MIXED_PRECISION": ("--mixed_precision", "train.precision (auto, fp32, bf16)"),
    "ACCELERATE_DYNAMO_BACKEND": ("--dynamo_backend", "train.compile=true"),
}


def ignored_launcher_settings() -> list[str]:
    """A line for each setting ``accelerate launch`` was given that ganforge does not use."""
    lines = []
    for var, (flag, key) in _ACCELERATE_SETTINGS.items():
        value = os.environ.get(var, "no").lower()
        if value != "no":
            lines.append(f"note: accelerate launch {flag}={value} is not used by ganforge; "
                         f"set {key} instead")
    return lines


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def check_batch(batch_size: int, pack: int = 1) -> int:
    """The per-rank batch; a one-line error if the global batch does not split evenly."""
    w = world_size()
    if batch_size % w:
        raise ConfigError(f"train.batch_size={batch_size} cannot be split over {w} processes; "
                          f"choose a multiple of {w}")
    per_rank = batch_size // w
    if per_rank % pack:
        raise ConfigError(f"train.batch_size={batch_size} over {w} processes gives {per_rank} "
                          f"per process, not a multiple of model.pack={pack}; choose a multiple "
                          f"of {w * pack}")
    return per_rank


def shard(x: Tensor) -> Tensor:
    """This rank's slice of a global batch (the batch itself with one process)."""
    w = world_size()
    if w == 1:
        return x
    b = len(x) // w
    return x[rank() * b: (rank() + 1) * b]


def _average_(tensors: list[Tensor]) -> None:
    """Replace each tensor by its mean over ranks (one all-reduce per dtype)."""
    w = world_size()
    if w == 1:
        return
    for dtype in dict.fromkeys(t.dtype for t in tensors):  # ordered alike on every rank
        group = [t for t in tensors if t.dtype == dtype]
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat /= w
        for t, v in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(v.view_as(t))


def average_grads(module: nn.Module) -> None:
    """Call between ``backward()`` and ``opt.step()``: every rank then takes the same step."""
    _average_([p.grad for p in module.parameters() if p.grad is not None])


def average_buffers(*modules: nn.Module) -> None:
    """Average floating-point buffers (batch-norm running mean and variance), which each rank
    updates from its own slice. The mean of the per-rank running variances leaves out the spread
    between the ranks' means, as unsynchronised data-parallel batch norm does."""
    _average_([b for m in modules for b in m.buffers() if b.is_floating_point()])


def _stacked(stats: dict[str, Tensor]) -> Tensor:
    """Scalar statistics as one float tensor where the collectives run."""
    return torch.stack([v.float().reshape(()) for v in stats.values()]).to(_device)


def average_stats(stats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Scalar statistics averaged over ranks (every rank's slice has the same size)."""
    if world_size() == 1:
        return stats
    flat = _stacked(stats)
    dist.all_reduce(flat)
    return dict(zip(stats, flat / world_size()))


def gather_stats(stats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each scalar statistic as a (W,) tensor of every rank's value, in rank order."""
    if world_size() == 1:
        return {k: v.reshape(1) for k, v in stats.items()}
    flat = _stacked(stats)
    parts = [torch.empty_like(flat) for _ in range(world_size())]
    dist.all_gather(parts, flat)
    return dict(zip(stats, torch.stack(parts, dim=1)))


def any_rank(flag: bool) -> bool:
    """True on every rank if it is true on any (a stop request reaches all at the same step)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=_device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
