"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_device_argument(parser: argparse.ArgumentParser, training: bool = False) -> None:
    """The ``--device`` option: where training (overrides training.device) or inference runs."""
    if training:
        parser.add_argument(
            "--device",
            default=None,
            help="auto, cpu, cuda, cuda:N or mps; overrides training.device (default: the "
            "config's, auto = CUDA if available, else CPU)",
        )
    else:
        parser.add_argument(
            "--device",
            default="auto",
            help="where the model runs: auto (default; CUDA if available, else CPU), cpu, "
            "cuda, cuda:N or mps",
        )


def device_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides plus ``training.device`` from ``--device`` (checked first)."""
    if args.device is None:
        return list(args.overrides)
    from atomlens.device import resolve_device

    resolve_device(args.device)  # one clear error before anything is loaded
    return [*args.overrides, f"training.device={args.device}"]
