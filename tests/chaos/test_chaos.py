"""The chaos suite's short form, run by ``make test``: about a minute of load and faults per
case, then every invariant of :mod:`tests.chaos._check`.

``workers``: workers SIGKILLed and SIGSTOPped past their lease, the API killed and restarted.
``redis``: redis-server SIGKILLed and restarted on the same data (AOF) and port; every
long-running process must ride the outage out. The long form is ``make chaos``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos._harness import ChaosConfig, run_chaos

CASES = {
    "workers": ("worker_sigkill", "worker_sigstop", "api_restart"),
    "redis": ("redis_restart",),
}


@pytest.mark.slow
@pytest.mark.timeout(360)
@pytest.mark.parametrize("case", list(CASES))
async def test_nothing_lost_or_duplicated_under_chaos(case: str, tmp_path: Path) -> None:
    config = ChaosConfig(seconds=75, kinds=CASES[case], seed=11, rate=1.0, drain_s=120)
    report = await run_chaos(config, tmp_path)
    print(report.table())
    assert report.ok, f"\n{report.table()}\n\n{report.details()}\nlogs: {tmp_path / 'logs'}"
    assert report.messages >= 30, report.table()  # a steady load, not a trickle
    assert sum(report.faults.values()) >= 5, report.table()
