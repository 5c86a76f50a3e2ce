"""A registry: names a config may choose, each mapped to what makes it; the one place to add one."""

from __future__ import annotations

from typing import Generic, TypeVar

from ..errors import InvalidInput

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # as a config field names it: sampler, scheduler, backend
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

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise InvalidInput(f"unknown {self.kind} '{name}'; valid: {', '.join(self._entries)}") from None
