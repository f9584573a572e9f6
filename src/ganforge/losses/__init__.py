"""Adversarial objectives, registered by name (see adversarial.py)."""
from ganforge.losses.adversarial import D_LOSSES, G_LOSSES, discriminator_stats

__all__ = ["D_LOSSES", "G_LOSSES", "discriminator_stats"]
