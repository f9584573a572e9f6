"""Registrations made outside ganforge (a model family, a loss, a penalty, a dataset), for the
command line.

In Python, importing the module that registers them before ``ganforge.load_config`` is enough.
The ``ganforge`` command imports, before it parses a config:

- every entry point of the group ``ganforge.plugins`` that installed packages declare (a module,
  or a function it calls with no arguments), unless ``GANFORGE_DISABLE_PLUGIN_AUTOLOAD`` is set
  (to anything but empty), as pytest's switch of the same name does for its plugins;
- every item of the ``GANFORGE_PLUGINS`` environment variable, comma-separated: a module name
  found on the Python path (``PYTHONPATH``), or a path to a ``.py`` file.

Processes that torchrun or accelerate start inherit the variable, so every rank registers the
same names.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from ganforge.errors import GanforgeError, out_of_memory

ENV = "GANFORGE_PLUGINS"
NO_AUTOLOAD = "GANFORGE_DISABLE_PLUGIN_AUTOLOAD"
GROUP = "ganforge.plugins"
_called: set[tuple[str, str]] = set()  # entry-point functions run in this process, once each
_loading: list[str] = []  # the plugin module being imported (or set up) now, if any


def registering_module(depth: int = 2) -> str:
    """The module to name for a registration made now: the module whose top-level code is
    running, found outward from the caller ``depth`` frames up (through helpers that call
    ``register``); while a plugin loads, that plugin, unless ganforge registers its own."""
    frame = first = sys._getframe(depth)
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    found = (frame or first).f_globals.get("__name__", "")
    return _loading[-1] if _loading and found.split(".")[0] != "ganforge" else found


def load_plugins() -> list[str]:
    """Import the entry points of ``GROUP`` and the items of ``$GANFORGE_PLUGINS``; returns what
    was loaded, by name. A plugin that cannot be found or fails to import is a GanforgeError
    naming it, the exception and where in the plugin it was raised."""
    loaded = []
    installed = [] if os.environ.get(NO_AUTOLOAD) else entry_points(group=GROUP)
    for ep in sorted(installed, key=lambda ep: ep.name):
        try:
            _load_entry_point(ep)
        except GanforgeError as e:  # an installed package's: say how to run without it
            raise GanforgeError(f"{e} (set {NO_AUTOLOAD}=1 to run without the plugins of "
                                "installed packages)") from None
        loaded.append(ep.name)
    for item in (s.strip() for s in os.environ.get(ENV, "").split(",")):
        if item:
            _run(f"{ENV} item '{item}'", lambda: _import(item), item)
            loaded.append(item)
    return loaded


def origins(cfg) -> str:
    """Comment lines for a run's config.yaml: for each registered name the config uses that
    code outside ganforge registered, the module that registered it, so that a later command
    without the plugin can name it (:func:`plugin_hint`). '' when there is none."""
    from ganforge.config import registries, setting

    lines = []
    for key, registry in registries().items():
        name = setting(cfg, key)
        module = registry.module(name) if name in registry else "ganforge"  # penalty=none
        if module.split(".")[0] == "ganforge":
            continue
        file = getattr(sys.modules.get(module), "__file__", None)
        if module == "__main__":  # importing a script again would run it
            where = f"the script {file}" if file else "an interactive session"
        elif "." not in module and file and not file.endswith("__init__.py"):  # one file
            where = f"the file {file}"
        else:
            where = f"the module {module}"
        lines.append(f"# {key}={name} is registered by {where}\n")
    return "".join(lines)


def plugin_hint(text: str, key: str, name: str) -> str:
    """Advice for a run whose config.yaml (``text``) names ``key=name``, unknown now: what
    registered it, from the comment :func:`origins` wrote."""
    found = re.search(rf"^# {re.escape(key)}={re.escape(name)} is registered by (.+)$", text,
                      re.MULTILINE)
    where = None if found is None else found[1]
    if where is None or not where.startswith(("the file ", "the module ")):
        by = "" if where is None else f" (by {where})"
        return (f"a name registered outside ganforge{by} needs a module that registers it "
                f"imported first (on the command line: {ENV})")
    item = where.split(" ", 2)[2]
    return (f"the run was trained with it registered by {where}: import it first (on the "
            f"command line: {ENV}={shlex.quote(item)})")


def _load_entry_point(ep) -> None:
    where = f"plugin '{ep.name}' ({ep.value}, entry point of the group {GROUP})"
    if not re.fullmatch(r"[\w.]+(\s*:\s*[\w.]+)?(\s*\[.*\])?", ep.value.strip()):
        raise GanforgeError(f"{where}: its value is not of the form 'module' or "
                            "'module:function'")
    _loading.append(ep.module)
    try:
        obj = _run(where, ep.load, ep.module)
        if callable(obj) and not isinstance(obj, type) and (ep.name, ep.value) not in _called:
            _run(where, obj, ep.module)  # a module imports once; a function runs once too
            _called.add((ep.name, ep.value))
    finally:
        _loading.pop()


def _import(item: str) -> None:
    """A module by name, or a .py file by path. The file is imported under its file name, with
    its folder on the Python path (after the rest), so that it can import the files beside it,
    as ``python file.py`` can; a name some other module has is refused."""
    if not item.endswith(".py") and os.sep not in item and "/" not in item:
        _loading.append(item)
        try:
            importlib.import_module(item)
        finally:
            _loading.pop()
        return
    path = Path(item).expanduser().resolve()
    if not path.is_file():
        apart = " (items are separated by commas)" if any(c in item for c in " ;:") else ""
        raise GanforgeError(f"no such .py file{apart}; give a path to a "
                            f"Python file (relative to the current folder '{Path.cwd()}'), or a "
                            "module name on PYTHONPATH")
    if any(_file_of(m) == path for m in list(sys.modules.values())  # resolve only namesakes
           if os.path.basename(getattr(m, "__file__", None) or "") == path.name):
        return  # imported already (named twice, or as a module of a package)
    name = path.stem
    other = _file_of(sys.modules[name]) if name in sys.modules else _found_file(name)
    if name in sys.modules or other is not None and Path(other).resolve() != path:
        where = f" ({other})" if other else ""
        raise GanforgeError(f"a module named '{name}' exists already"
                            f"{where}; rename the file, as importing it would stand in for that "
                            "module")
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _loading.append(name)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        _loading.pop()


def _file_of(module) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _found_file(name: str) -> str | None:
    """Where the import system finds a top-level module ``name`` (built-in ones included)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return None if spec is None else (spec.origin or "a namespace package")


def _run(where: str, fn, source: str):
    """``fn()``, with any failure said in one line that names the plugin (``where``) and the
    line of the plugin it came from (``source``: its file or module name)."""
    try:
        return fn()
    except GanforgeError as e:
        raise GanforgeError(f"{where}: {e}") from None
    except SystemExit as e:
        raise GanforgeError(f"{where} called sys.exit({e.code!r}) while it was loaded") from None
    except ModuleNotFoundError as e:
        if e.name == source or source.startswith(f"{e.name}."):  # the plugin, not what it uses
            raise GanforgeError(f"{where}: no module named '{e.name}'; install it or add its "
                                f"folder to PYTHONPATH (or give the path to a .py file in {ENV})"
                                ) from None
        raise GanforgeError(f"{where} needs the module '{e.name}', which is not installed (or not "
                            "on PYTHONPATH)") from None
    except Exception as e:
        if isinstance(e, SyntaxError):  # where the plugin's text is wrong, not importlib's
            said, at = f"SyntaxError: {e.msg}", f" (at {Path(e.filename or '?').name}:{e.lineno})"
        else:
            said, at = _said(e), _origin(e, source)
        raise GanforgeError(f"{where} failed to load: {said}{at}") from None


def call(where: str, fn, *args, source: str | None = None):
    """``fn(*args)``. Where the code comes from outside ganforge (``source``: the module that
    registered it; ``fn``'s own module by default), its failure becomes one GanforgeError that
    names ``where``, the exception and the line of that module it came from, chained to the
    exception (so Python still shows the whole traceback; the command line prints the one
    line). ganforge's own code is called as it is: a failure there is a bug to see whole.
    Running out of memory is not the plugin's failure: it passes through, for the command
    line's advice."""
    module = source or getattr(fn, "__module__", None) or ""
    if module.split(".")[0] == "ganforge":
        return fn(*args)
    try:
        return fn(*args)
    except GanforgeError:  # the plugin's own one-line error
        raise
    except Exception as e:
        if out_of_memory(e):
            raise
        raise GanforgeError(f"{where} failed: {_said(e)}"
                            f"{_origin(e, module, anywhere=False)}") from e


def _said(e: BaseException) -> str:
    """'Type: its first line of text', or 'Type' when it says nothing."""
    first = next((line for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first.strip()}" if first else type(e).__name__


def _home(source: str) -> tuple[Path, bool] | None:
    """Where a plugin's code lies, from its path or module name: its file, or its package's
    folder (True); None when it has no file."""
    if source.endswith(".py") or os.sep in source or "/" in source:
        return Path(source).expanduser().resolve(), False
    top = source if source == "__main__" else source.split(".")[0]
    module = sys.modules.get(top)
    file = getattr(module, "__file__", None) or (None if module else _found_file(top))
    if file is None and getattr(module, "__path__", None):  # a namespace package
        return Path(list(module.__path__)[0]).resolve(), True
    if not file or not file.endswith(".py"):
        return None
    path = Path(file).resolve()
    return (path.parent, True) if path.name == "__init__.py" else (path, False)


def _origin(e: BaseException, source: str, anywhere: bool = True) -> str:
    """' (at FILE:LINE)' for the innermost frame in the plugin's own code (``source``: its path
    or module name), or with ``anywhere``, where there is none, in any file that is not the
    import machinery's or this module's; '' when there is none."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<")]
    home = _home(source)
    mine = [] if home is None else [
        f for f in frames if (Path(f.filename).resolve().is_relative_to(home[0]) if home[1]
                              else Path(f.filename).resolve() == home[0])]
    if not mine and anywhere:
        skip = (str(Path(importlib.__file__).parent), str(Path(__file__)))
        mine = [f for f in frames if not f.filename.startswith(skip)]
    return f" (at {Path(mine[-1].filename).name}:{mine[-1].lineno})" if mine else ""
