"""Where atomlens keeps files between runs: the one resolver of the cache folder.

The cache folder is ``$ATOMLENS_CACHE`` when set, else ``atomlens`` in the per-user cache
folder (``$XDG_CACHE_HOME``, by default ``~/.cache``). Paths are made absolute, so a run
records where its graphs are whatever folder it is later used from.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ATOMLENS_CACHE"


def default_cache_dir() -> Path:
    """``$ATOMLENS_CACHE``, else ``$XDG_CACHE_HOME/atomlens`` (``~/.cache/atomlens``)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base).expanduser() / "atomlens").absolute()


def resolve_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """An explicit cache folder made absolute, or the default one when None."""
    if cache_dir is None or str(cache_dir) == "":
        return default_cache_dir()
    return Path(cache_dir).expanduser().absolute()
