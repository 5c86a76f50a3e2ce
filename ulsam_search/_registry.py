"""The registry every extension point uses (attention types, backbones, datasets, objectives, samplers, schedulers,
backends): a name is registered once, looked up with an error that lists the valid names, listed in the order
the names were registered (the order a config's and the CLI's choices show)."""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import InvalidInput

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # as errors name it: attention, backbone, dataset, objective, sampler, ...
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``name``; a name is registered once."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        """The registered names, in the order they were registered."""
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise InvalidInput(f"unknown {self.kind} '{name}'; valid: {', '.join(self._entries)}") from None
