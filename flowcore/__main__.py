"""``python -m flowcore`` = the ``flowcore`` command."""

import sys

from .cli import main

sys.exit(main())
