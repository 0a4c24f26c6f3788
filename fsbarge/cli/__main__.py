"""``python -m fsbarge.cli`` is the ``fsbarge`` command too."""

import sys

from fsbarge.cli import main

sys.exit(main())
