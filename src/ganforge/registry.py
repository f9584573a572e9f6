"""A name -> object registry, filled by decorators so that variants need no central if-chain."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from ganforge.errors import ConfigError
from ganforge.plugins import registering_module

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, reserved: tuple[str, ...] = ()):
        self.kind = kind
        self.reserved = reserved  # names the config gives another meaning ("none": no penalty)
        self._items: dict[str, T] = {}
        self._modules: dict[str, str] = {}  # the module that registered each name

    def register(self, name: str) -> Callable[[T], T]:
        """``@REGISTRY.register("name")`` above the function or class; the name is what a config
        selects it by."""
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            shown = getattr(name, "__name__", repr(name))  # bare @register: the function
            raise TypeError(f"a {self.kind} is registered under a name, a non-empty string "
                            f"without surrounding spaces (@register(\"my-name\")), not {shown}")
        if name in self.reserved:
            raise ValueError(f"'{name}' cannot name a {self.kind}: in the config it means "
                             "none is used")

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            # what a run folder names for a plugin: the module that registered it (a partial
            # or a torch function registered as it is would name its own module)
            self._modules[name] = registering_module()
            return obj
        return deco

    def module(self, name: str) -> str:
        """The module that registered ``name`` ('' when unknown)."""
        return self._modules.get(name, "")

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} '{name}'; choose one of: "
                              f"{', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
