"""Adversarial objectives (adversarial.py) and gradient penalties (penalties.py), by name."""
from ganforge.losses.adversarial import (D_LOSSES, DISTANCE_ESTIMATES, G_LOSSES,
                                         discriminator_stats)
from ganforge.losses.penalties import PENALTIES

__all__ = ["D_LOSSES", "DISTANCE_ESTIMATES", "G_LOSSES", "PENALTIES", "discriminator_stats"]
