"""``python -m fsbarge`` is the ``fsbarge`` command."""

import sys

from fsbarge.cli import main

sys.exit(main())
