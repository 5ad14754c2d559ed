"""``atomlens models``: the trained models shipped with the package, their cards, export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from atomlens.cli.options import add_device_argument


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
    models = commands.add_parser(
        "models",
        help="list the trained models shipped with atomlens (predict --model NAME)",
        description="The trained models shipped with atomlens, with their cards. Use one by "
        "name wherever a run directory is accepted: atomlens predict --model qm9-homo "
        "mol.xyz; atomlens.load_model('qm9-homo').",
    )
    models.set_defaults(handler=_list)
    actions = models.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", help="a table of the shipped models (the default)")
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="print one model's card")
    show.add_argument("name", help="model name, e.g. qm9-homo")
    show.add_argument(
        "--config", action="store_true", help="print its training config (YAML) instead"
    )
    show.set_defaults(handler=_show)
    export = actions.add_parser(
        "export",
        help="(maintainers) ship a finished run as a named model",
        description="Evaluate the best checkpoint of a finished run on its full test split "
        "and on the first 200 test structures (sorted indices), write the model folder "
        "src/atomlens/zoo/NAME/ (weights, config, metadata, card) of the source checkout and "
        "the 200 structures with their labels to tests/data/zoo/NAME.extxyz. Rerunning "
        "replaces the model.",
    )
    export.add_argument("run", type=Path, help="finished training run directory")
    export.add_argument("--name", required=True, help="model name, e.g. qm9-homo")
    export.add_argument(
        "--data-description",
        default=None,
        help="the data as the card states it (default: the config's data.source)",
    )
    export.add_argument(
        "--checkout",
        type=Path,
        default=None,
        help="source checkout to write into (default: the one atomlens runs from)",
    )
    add_device_argument(export)
    export.set_defaults(handler=_export)


def format_size(size: int) -> str:
    """Bytes as ``3.9 MB`` (decimal units)."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def _list(args: argparse.Namespace) -> None:
    from atomlens.zoo import shipped_models, zoo_dir, zoo_size_bytes

    models = shipped_models()
    if not models:
        print(f"no shipped models in this installation ({zoo_dir()})")
        return
    rows = [["name", "task", "data", "test MAE", "R2", "params", "epochs", "date"]]
    for name, model in models.items():
        card = model.card
        unit = f" {card['unit']}" if card["unit"] else ""
        r2 = card["test"]["r2"]
        rows.append(
            [
                name,
                card["task"],
                card["data"],
                f"{card['test']['mae']:.4g}{unit}",
                "-" if r2 is None else f"{r2:.4f}",
                f"{card['parameters']:,}",
                str(card["epochs"]),
                card["date"],
            ]
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(
        f"\n{len(models)} model(s), {format_size(zoo_size_bytes())} of weights, configs and "
        f"cards in {zoo_dir()}; details: atomlens models show NAME"
    )


def _show(args: argparse.Namespace) -> None:
    from atomlens.zoo import CONFIG, shipped_model

    model = shipped_model(args.name)
    if args.config:
        sys.stdout.write((model.path / CONFIG).read_text(encoding="utf-8"))
        return
    for key, value in model.card.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {_short(v)}" for k, v in value.items())
        elif isinstance(value, list):
            value = " ".join(map(str, value))
        print(f"{key:<18}{_short(value)}")
    print(f"{'size':<18}{format_size(model.size_bytes)}")


def _short(value: Any) -> str:
    """A card value for display: floats to 4 significant digits, null as -."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _export(args: argparse.Namespace) -> None:
    from atomlens.zoo.export import export_run

    model = export_run(
        args.run,
        args.name,
        data_description=args.data_description,
        checkout=args.checkout,
        device=args.device,
    )
    card = model.card
    unit = f" {card['unit']}" if card["unit"] else ""
    subset = card["test_subset"]
    print(
        f"exported {model.name} to {model.path}: test MAE {card['test']['mae']:.4g}{unit} "
        f"on {card['test']['n']} structures; {subset['n']}-structure subset MAE "
        f"{subset['mae']:.4g}{unit} (fixture {subset['fixture']})"
    )
