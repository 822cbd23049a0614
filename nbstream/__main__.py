"""``python -m nbstream``: the same as the ``nbstream`` command."""

import sys

from nbstream.cli import main

sys.exit(main())
