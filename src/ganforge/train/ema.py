"""An exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019,
"The Unusual Effectiveness of Averaging in GAN Training").

After every iteration, for each parameter and floating-point buffer (batch-norm running
statistics) of the live generator ``g``:

    ema <- beta * ema + (1 - beta) * g,   beta = train.ema_decay

with ``ema = g`` copied until ``train.ema_start`` steps have run. The averaged copy never
trains; it is what samples, evaluation and progress frames use when ``train.ema_decay > 0``.
Integer buffers (batch norm's step counter) are copied.

The copy has G's own state-dict keys, so its checkpoint file ``generator_ema.safetensors``
loads into a freshly built G like ``generator.safetensors`` does (torch's AveragedModel would
prefix every key with ``module.`` and add a counter).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, g: nn.Module, decay: float, start: int = 0):
        self.decay, self.start = decay, start
        self.model = copy.deepcopy(g).requires_grad_(False)

    @torch.no_grad()
    def update(self, g: nn.Module, step: int) -> None:
        """Average after 1-based ``step``; a plain copy while ``step <= train.ema_start``."""
        weight = 1.0 if step <= self.start else 1.0 - self.decay
        # state_dict() tensors share storage with the modules' own, so this writes the average
        for e, x in zip(self.model.state_dict().values(), g.state_dict().values()):
            if e.is_floating_point():
                e.lerp_(x, weight)
            else:
                e.copy_(x)
