"""``python -m fdopa.cli``: the ``fdopa`` command."""

import sys

from fdopa.cli import main

sys.exit(main())
