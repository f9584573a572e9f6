"""Sample-quality measurements (mode coverage on Gaussian mixtures; see modes.py)."""
from ganforge.metrics.modes import grid_centers, mode_metrics, ring_centers

__all__ = ["grid_centers", "mode_metrics", "ring_centers"]
