"""``python -m fsbarge`` is the ``fsbarge`` command."""

import sys

from .cli import main

sys.exit(main())
