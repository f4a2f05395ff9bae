"""``python -m wan_nb``: the same as the ``wan-nb`` command (see ``wan_nb.cli``)."""

import sys

from .cli import main

sys.exit(main())
