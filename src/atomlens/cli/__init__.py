"""The ``atomlens`` command line. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from atomlens.errors import AtomlensError

EXAMPLES = """\
examples:
  atomlens models
  atomlens predict --model qm9-homo molecules.xyz --out predictions
  atomlens config list
  atomlens config show qm9_homo > my.yaml
  atomlens data info qm9 --limit 1000
  atomlens -q train configs/qm9_homo.yaml --device cuda --set training.precision=bf16
  atomlens data info crystals.extxyz
  atomlens graphs build qm9 --limit 2000 --targets homo lumo
  atomlens graphs build crystals.extxyz --targets formation_energy_per_atom
  atomlens graphs build crystals.extxyz --kind cutoff --param cutoff=5.0
  atomlens graphs show molecule.xyz
  atomlens graphs info ~/.cache/atomlens/qm9-<key>
  atomlens benchmark --task band_gap --data crystals.extxyz --model sen --out runs/gap_sen
  atomlens benchmark --task matbench_mp_gap --model sen --out runs/mb_gap --no-symmetry
  atomlens explain runs/demo molecules.xyz --out explanations --faithfulness
  atomlens explain runs/demo --split test --n 200 --local
  atomlens validate-attention runs/demo --reference homo --n 100
  atomlens featurize li_crystals.extxyz --out features.csv
  atomlens fit-table features.csv --target lnD --model xgboost
  atomlens sisso features.csv --target lnD --dim 3 --ops ""
  atomlens amorphous Li2Si2O5 --atoms 100 --anneal 1500 2000 2500 --diffusion Li
  atomlens amorphous-db build plan.yaml --db amorphous.db --jobs 2
  atomlens featurize --db amorphous.db --out features.csv
  atomlens diffusion md.extxyz --species Li --temperature 1500 --timestep 10
  atomlens coercivity configs/coercivity_heisenberg.yaml --threads 2
  mpiexec -n 2 atomlens coercivity configs/coercivity_nd2fe14b.yaml --mpi
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        with log_to_console(_log_level(args)):
            args.handler(args)
    except (AtomlensError, FileNotFoundError) as exc:
        print(f"atomlens: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as exc:  # unwritable output, a file where a folder should be, ...
        from atomlens.files import describe_os_error

        print(f"atomlens: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("atomlens: interrupted (finished work is kept; run again to resume)", file=sys.stderr)
        return 130
    return 0


class ConsoleHandler(logging.Handler):
    """INFO and DEBUG as plain lines on stdout, warnings and errors on stderr.

    The streams are looked up at every record, so redirected ``sys.stdout`` works.
    """

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                stream = sys.stderr
                message = f"atomlens: {record.levelname.lower()}: {message}"
            else:
                stream = sys.stdout
            stream.write(message + "\n")
            stream.flush()
        except BrokenPipeError:
            raise
        except Exception:
            self.handleError(record)


@contextmanager
def log_to_console(level: int) -> Iterator[None]:
    """Send the ``atomlens`` logger's records at ``level`` and above to the console."""
    logger = logging.getLogger("atomlens")
    handler = ConsoleHandler(level)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _log_level(args: argparse.Namespace) -> int:
    if args.quiet:
        return logging.WARNING
    return logging.DEBUG if args.verbose else logging.INFO


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atomlens",
        description="Learn material properties from atomic structure and see which atoms matter.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from atomlens import __version__

    parser.add_argument("--version", action="version", version=f"atomlens {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="also print debug messages")
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="print warnings and errors only"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    from atomlens.cli import (
        amorphous_db,
        benchmark,
        configs,
        core,
        descriptors,
        diffusion,
        explain,
        models,
        spins,
    )

    for module in (core, models, benchmark, explain, descriptors, diffusion, spins, configs):
        module.register(commands)
    amorphous_db.register(commands)
    return parser
