"""The ``flowcore`` command line (the face): one module per command group.

``main(argv=None) -> int`` is the entry point (``[project.scripts]`` and ``python -m flowcore``);
``build_parser()`` is its parser, built from the command table ``flowcore.cli.app.COMMANDS`` (one
entry per command), which ``tools/gen_cli_docs.py`` renders as ``docs/cli.md``.
"""

from flowcore.cli.app import build_parser, main

__all__ = ["main", "build_parser"]
