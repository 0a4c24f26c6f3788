"""``python -m fsbarge.cli`` is the ``fsbarge`` command too."""

import sys

from . import main

sys.exit(main())
