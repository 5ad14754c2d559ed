"""Options shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path


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


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--model NAME`` option: a shipped model (or run directory) instead of RUN."""
    parser.add_argument(
        "--model",
        metavar="NAME",
        default=None,
        help="a shipped model (see `atomlens models`), e.g. qm9-homo, given instead of RUN; "
        "then every positional argument is a structure file",
    )


def model_and_files(args: argparse.Namespace) -> tuple[str, list[Path]]:
    """The model (``--model``, else the first positional ``inputs``) and the files after it.

    Raises:
        AtomlensError: If neither ``--model`` nor a run is given.
    """
    inputs = list(args.inputs)
    if args.model is not None:
        return args.model, inputs
    if not inputs:
        from atomlens.errors import AtomlensError

        raise AtomlensError("give a run directory (or --model NAME; see `atomlens models`)")
    return str(inputs[0]), inputs[1:]
