"""ganforge: train, evaluate and explain generative adversarial networks."""
from ganforge.config import Config, load_config
from ganforge.errors import GanforgeError

__version__ = "0.1.0"
__all__ = ["Config", "GanforgeError", "load_config", "load_data", "train", "load_generator",
           "__version__"]


def __getattr__(name):
    # Lazy, so that `import ganforge` stays cheap for the command line.
    if name == "train":  # the package, callable as the training function (train/__init__.py)
        import ganforge.train
        return ganforge.train
    if name == "load_data":
        from ganforge.data import load_data
        return load_data
    if name == "load_generator":
        from ganforge.train.checkpoint import load_generator
        return load_generator
    raise AttributeError(name)
