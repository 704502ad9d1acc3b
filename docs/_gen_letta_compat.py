"""Write docs/letta-compat.md, the coverage of Letta's public REST operations.

    python docs/_gen_letta_compat.py                       # the table, from the app's routes
    python docs/_gen_letta_compat.py --reference letta-openapi-0.16.8.json
                                                           # the operation list, from Letta's
                                                           # OpenAPI document (then the table)

tests/api/test_letta_compat.py fails when the table is stale or the app disagrees with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.api.compat import main

if __name__ == "__main__":
    raise SystemExit(main())
