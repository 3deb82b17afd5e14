"""``python -m trio_http`` is ``trio-http``."""

import sys

from .cli import main

sys.exit(main())
