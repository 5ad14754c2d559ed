"""``python -m atomlens.cli`` (used by torchrun)."""

from atomlens.cli import main

raise SystemExit(main())
