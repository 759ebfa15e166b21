"""``python -m benchmarks``: see ``benchmarks/__init__.py`` and ``benchmarks/cli.py``."""

from .cli import main

raise SystemExit(main())
