"""``python -m orchestrator.cli`` is ``memgrid``."""

import sys

from orchestrator.cli import main

sys.exit(main())
