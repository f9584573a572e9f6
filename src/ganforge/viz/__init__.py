"""Pictures of a run: sample grids, the progress GIF and training curves."""
from ganforge.viz.plots import make_gif, plot_curves, save_grid

__all__ = ["make_gif", "plot_curves", "save_grid"]
