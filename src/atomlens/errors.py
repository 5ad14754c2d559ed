"""Exceptions raised by atomlens; every message names where the bad input came from."""

from __future__ import annotations


class AtomlensError(Exception):
    """Base class of all atomlens errors."""


class StructureError(AtomlensError, ValueError):
    """A structure is invalid (unknown element, NaN coordinates, overlapping atoms, ...).

    Attributes:
        source: File name or description of the in-memory object.
        frame: Index of the record inside the source, if known.
    """

    def __init__(self, message: str, source: str | None = None, frame: int | None = None):
        self.source = source
        self.frame = frame
        self.reason = message
        super().__init__(f"{describe_location(source, frame)}: {message}")

    def __reduce__(self):  # keep source/frame when sent between processes
        return (type(self), (self.reason, self.source, self.frame))


class DataError(AtomlensError, ValueError):
    """A data set, label or cache is invalid or missing."""


def describe_location(source: str | None, frame: int | None) -> str:
    """Return a human-readable location such as ``'file.xyz', frame 3``."""
    where = f"'{source}'" if source else "structure"
    if frame is not None:
        where += f", frame {frame}"
    return where
