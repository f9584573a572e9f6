"""One rank of a torchrun launch made by test_distributed.py (run as a script, not collected).

    dist_worker.py unit OUT           checks dist.py's helpers on the ranks, then writes OUT/rankR.ok
    dist_worker.py train OUT ARGS...  runs `ganforge ARGS`, then writes this rank's final weights to
                                      OUT/rankR_generator.safetensors (and _discriminator), and the
                                      paths under OUT that ranks other than 0 opened for writing,
                                      created, moved or removed to OUT/rankR_writes.json
"""
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

import ganforge.train.loop as loop
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.train import dist

RANK = int(os.environ["RANK"])
WRITE_EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree")


def unit() -> None:
    dist.setup(torch.device("cpu"))
    assert (dist.world_size(), dist.rank(), dist.is_main()) == (2, RANK, RANK == 0)
    assert torch.equal(dist.shard(torch.arange(8)), torch.arange(4) + 4 * RANK)
    assert dist.check_batch(16) == 8 and dist.check_batch(16, pack=4) == 8
    for bad in ((15, 1), (16, 3)):
        try:
            dist.check_batch(*bad)
            raise AssertionError(f"check_batch{bad} did not fail")
        except ConfigError as e:
            assert "train.batch_size" in str(e) and "\n" not in str(e)

    lin, bn = nn.Linear(3, 2), nn.BatchNorm1d(2)
    for p in lin.parameters():  # rank 0 has gradient 1, rank 1 has 3: the mean is 2
        p.grad = torch.full_like(p, 1.0 + 2 * RANK)
    lin.bias.grad = None  # parameters without a gradient are left alone
    dist.average_grads(lin)
    assert torch.equal(lin.weight.grad, torch.full((2, 3), 2.0)) and lin.bias.grad is None
    bn.running_mean.fill_(RANK)
    bn.num_batches_tracked.fill_(5)
    dist.average_buffers(lin, bn)
    assert torch.equal(bn.running_mean, torch.full((2,), 0.5)) and int(bn.num_batches_tracked) == 5
    means = dist.average_stats({"a": torch.tensor(float(RANK)), "b": torch.tensor(4.0 * RANK)})
    assert list(means) == ["a", "b"] and means["a"].item() == 0.5 and means["b"].item() == 2.0
    gathered = dist.gather_stats({"a": torch.tensor(float(RANK)), "b": torch.tensor(4.0 * RANK)})
    assert gathered["a"].tolist() == [0.0, 1.0] and gathered["b"].tolist() == [0.0, 4.0]
    assert dist.any_rank(RANK == 1) and not dist.any_rank(False)
    dist.teardown()


def train(out: Path, args: list[str]) -> None:
    writes: list[str] = []
    if RANK != 0:
        root = str(out.parent)

        def audit(event, hook_args):
            paths = hook_args[:2] if event in ("os.rename", "os.replace") else hook_args[:1]
            if event == "open":
                mode, flags = hook_args[1], hook_args[2]
                if not (any(c in (mode or "") for c in "wax+")
                        or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                    return
            elif event not in WRITE_EVENTS:
                return
            writes.extend(str(p) for p in paths
                          if isinstance(p, (str, Path)) and os.path.abspath(p).startswith(root))

        sys.addaudithook(audit)

    models = []
    build = loop.build_models

    def keep(cfg):
        models[:] = build(cfg)
        return tuple(models)

    loop.build_models = keep
    assert main(args) == 0
    recorded = list(writes)  # before this script's own files below
    for name, m in zip(("generator", "discriminator"), models):
        save_file({k: v.contiguous() for k, v in m.state_dict().items()},
                  out / f"rank{RANK}_{name}.safetensors")
    (out / f"rank{RANK}_writes.json").write_text(json.dumps(recorded))


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    unit() if mode == "unit" else train(out, sys.argv[3:])
    (out / f"rank{RANK}.ok").write_text("ok")
