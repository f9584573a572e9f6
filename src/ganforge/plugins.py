"""Registrations made outside ganforge (a model family, a loss, a penalty, a dataset), for the
command line.

In Python, importing the module that registers them before ``ganforge.load_config`` is enough.
The ``ganforge`` command imports, before it parses a config:

- every entry point of the group ``ganforge.plugins`` that installed packages declare (a module,
  or a function it calls with no arguments);
- every item of the ``GANFORGE_PLUGINS`` environment variable, comma-separated: a module name
  found on the Python path (``PYTHONPATH``), or a path to a ``.py`` file.

Processes that torchrun or accelerate start inherit the variable, so every rank registers the
same names.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from ganforge.errors import GanforgeError

ENV = "GANFORGE_PLUGINS"
GROUP = "ganforge.plugins"


def load_plugins() -> list[str]:
    """Import the entry points of ``GROUP`` and the items of ``$GANFORGE_PLUGINS``; returns what
    was loaded, by name. A plugin that cannot be found or fails to import is a GanforgeError
    naming it, the exception and where it was raised."""
    loaded = []
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        where = f"plugin '{ep.name}' ({ep.value}, entry point of the group {GROUP})"
        obj = _run(where, ep.load)
        if callable(obj) and not isinstance(obj, type):
            _run(where, obj)
        loaded.append(ep.name)
    for item in (s.strip() for s in os.environ.get(ENV, "").split(",")):
        if item:
            _run(f"{ENV} item '{item}'", lambda: _import(item))
            loaded.append(item)
    return loaded


def _import(item: str) -> None:
    """A module by name, or a .py file by path (under its file name, as ``python file.py``
    would not; its classes can then be found again by pickle and dataclasses)."""
    if not item.endswith(".py") and os.sep not in item and "/" not in item:
        importlib.import_module(item)
        return
    path = Path(item).expanduser()
    if not path.is_file():
        raise GanforgeError(f"{ENV} item '{item}': no such .py file; give a path to a Python "
                            "file, or a module name on PYTHONPATH")
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) and \
            Path(sys.modules[name].__file__).resolve() == path.resolve():
        return  # already imported (named twice)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _run(where: str, fn):
    """``fn()``, with any failure but a GanforgeError or Ctrl-C said in one line."""
    try:
        return fn()
    except (GanforgeError, KeyboardInterrupt):
        raise
    except ModuleNotFoundError as e:
        raise GanforgeError(f"{where}: no module named '{e.name}'; install it or add its folder "
                            f"to PYTHONPATH (or give the path to a .py file in {ENV})") from None
    except Exception as e:
        frames = traceback.extract_tb(e.__traceback__)
        at = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        first = (str(e).splitlines() or [""])[0]
        raise GanforgeError(f"{where} failed to import: {type(e).__name__}: {first}{at}") \
            from None
