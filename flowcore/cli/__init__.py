"""The ``flowcore`` command line (the face): one module per command group.

``main(argv=None) -> int`` is the entry point (``[project.scripts]`` and ``python -m flowcore``).
"""

from flowcore.cli.app import main

__all__ = ["main"]
