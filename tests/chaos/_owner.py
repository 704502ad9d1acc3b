"""``python -m tests.chaos._owner``: own the embedded passage engine and serve it until killed.

The chaos suite runs this beside its workers and API so that the engine's owner is never one
of the processes it kills (see :meth:`tests.chaos._procs.Procs.start_archival_owner`).
"""

from __future__ import annotations

import signal

import anyio

from orchestrator.bootstrap import open_runtime


async def _main() -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_runtime(own_archival=True):
            async for _ in signals:
                break


if __name__ == "__main__":
    anyio.run(_main)
