"""The training loop and its checkpoints.

``ganforge.train`` names both this package and the function ``ganforge.train.loop.train``.
Python sets a subpackage as an attribute of its parent when it is first imported, which would
hide the function, so the package itself is callable: ``ganforge.train(cfg, run_dir, ...)``
trains, whichever of the two the name holds at that moment."""
import sys
import types


class _Callable(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from ganforge.train.loop import train
        return train(*args, **kwargs)

    @property
    def __signature__(self):  # inspect.signature, help() and editors show train's parameters
        import inspect

        from ganforge.train.loop import train
        return inspect.signature(train)


def __getattr__(name: str):  # ``from ganforge.train import train`` gives the function too
    if name == "train":
        from ganforge.train.loop import train
        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _Callable
