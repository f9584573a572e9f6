"""Replaying the training step as one CUDA graph (``train.cuda_graph``).

A DCGAN step at batch 128 launches several hundred small kernels; on a fast GPU Python and the
launches, not the arithmetic, set the pace. ``CapturedStep`` runs the step eagerly for its first
calls (real training steps, on a side stream as capture requires), records the next call as a
CUDA graph, and from then on copies each call's inputs into the recorded ones and replays the
graph. The step must do the same work every call: no host reads, no new random draws inside (the
loop draws data and noise outside and hands them in), and nothing changed on the Python side that
the graph would not see (a decaying learning rate lives in a tensor the loop fills in place;
``loop.use_cuda_graph`` lists what qualifies).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


class CapturedStep:
    """``step(*inputs) -> dict of tensors``, eager for ``warmup`` calls, then graph replays.
    The dict a replay returns holds the same (recorded) tensors every time: copy what you keep."""

    def __init__(self, fn: Callable[..., dict[str, Tensor]], warmup: int = 3):
        self.fn, self.warmup, self.calls = fn, warmup, 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: list[Tensor | None] = []
        self.outputs: dict[str, Tensor] = {}

    def __call__(self, *inputs: Tensor | None) -> dict[str, Tensor]:
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:  # record (nothing runs while recording), then replay below
            self.inputs = [None if x is None else x.clone() for x in inputs]
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = self.fn(*self.inputs)
        for recorded, x in zip(self.inputs, inputs):
            if recorded is not None:
                recorded.copy_(x)
        self.graph.replay()
        return self.outputs
