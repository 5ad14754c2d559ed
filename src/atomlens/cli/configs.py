"""``atomlens config``: the training and coercivity configs shipped with the package."""

from __future__ import annotations

import sys
from typing import Any


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
    config = commands.add_parser(
        "config",
        help="list or print the configs shipped with atomlens",
        description="The configs shipped with atomlens (the checkout's configs/ folder). "
        "Copy one to edit it: atomlens config show qm9_homo > my.yaml",
    )
    actions = config.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="names and one-line descriptions")
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="print a config's YAML")
    show.add_argument("name", help="config name, e.g. qm9_homo (see `atomlens config list`)")
    show.set_defaults(handler=_show)


def _list(args: Any) -> None:
    from atomlens.yamlconfig import packaged_configs

    configs = packaged_configs()
    width = max(map(len, configs), default=0)
    for name, description in configs.items():
        print(f"{name:<{width}}  {description}")


def _show(args: Any) -> None:
    from atomlens.yamlconfig import packaged_config_text

    sys.stdout.write(packaged_config_text(args.name))
