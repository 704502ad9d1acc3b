"""Hosts in network namespaces: a bridge in the root namespace, one namespace per "host".

Each host is a network namespace joined to the bridge by a veth pair. The test process, the
redis-server and the scripted model live in the root namespace and listen on the bridge's
address; processes started with :meth:`Network.argv` run inside a host's namespace, so the
only way they reach Redis or the model is across their own link. :meth:`Network.cut` takes a
host's link down on the bridge side, a partition: packets are dropped both ways, connections
stay open and nothing answers (no reset), as when a machine's switch port dies.
:meth:`Network.restore` brings it back, and TCP carries on where it stopped.

Needs root with ``CAP_NET_ADMIN`` and ``CAP_SYS_ADMIN`` and ``ip`` from iproute2; when any of
that is missing, :func:`require_netns` fails with a message naming what is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ("NetnsUnavailable", "Network", "network", "require_netns")


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here; the message says what is missing."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise NetnsUnavailable(
            f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result


def require_netns() -> None:
    """Raise :class:`NetnsUnavailable` unless namespaces, veth pairs and bridges can be made."""
    if shutil.which("ip") is None:
        raise NetnsUnavailable(
            "`ip` is not on PATH: install iproute2 (apt-get install iproute2; .ci/run does)"
        )
    if os.geteuid() != 0:
        raise NetnsUnavailable(f"network namespaces need root; running as uid {os.geteuid()}")
    probe = f"mgprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except NetnsUnavailable as exc:
        raise NetnsUnavailable(
            f"cannot create a network namespace (needs CAP_SYS_ADMIN and CAP_NET_ADMIN, e.g. a "
            f"container run with --privileged or --cap-add NET_ADMIN,SYS_ADMIN): {exc}"
        ) from None
    try:
        link = f"mgpv{os.getpid() % 100000}"
        try:
            _ip("link", "add", link, "type", "veth", "peer", "name", link + "p", "netns", probe)
        except NetnsUnavailable as exc:
            raise NetnsUnavailable(f"cannot create a veth pair (veth module?): {exc}") from None
        _ip("link", "del", link, check=False)
    finally:
        _ip("netns", "del", probe, check=False)


def _free_subnet() -> str:
    """A ``10.x.y`` /24 prefix that no interface here uses (tests may run side by side)."""
    used = _ip("-4", "-o", "addr", "show").stdout
    seed = os.getpid()
    for attempt in range(256):
        x, y = 200 + (seed + attempt) % 50, (seed // 50 + attempt * 7) % 250 + 1
        prefix = f"10.{x}.{y}"
        if f" {prefix}." not in used:
            return prefix
    raise NetnsUnavailable("no free 10.x.y.0/24 subnet for the test network")


@dataclass
class Network:
    """A bridge with an address in the root namespace and hosts on it (see the module doc)."""

    tag: str
    prefix: str
    hosts: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"mgb{self.tag}"

    @property
    def gateway(self) -> str:
        """The bridge's address: where Redis and the model listen."""
        return f"{self.prefix}.1"

    def namespace(self, index: int) -> str:
        return f"mgn{self.tag}h{index}"

    def _link(self, index: int) -> str:
        # Interface names have at most 15 characters.
        return f"mgv{self.tag}h{index}"

    def address(self, index: int) -> str:
        return f"{self.prefix}.{10 + index}"

    def add_host(self) -> int:
        """Make one more host; returns its index."""
        index = len(self.hosts)
        ns, link = self.namespace(index), self._link(index)
        _ip("netns", "add", ns)
        self.hosts.append(ns)
        _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", link, "master", self.bridge)
        _ip("link", "set", link, "up")
        _ip("-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return index

    def argv(self, index: int, command: Sequence[str]) -> list[str]:
        """``command`` run inside host ``index`` (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace(index), *command]

    def cut(self, index: int) -> None:
        """Partition host ``index``: its link goes down on the bridge's side."""
        _ip("link", "set", self._link(index), "down")

    def restore(self, index: int) -> None:
        """Heal the partition of host ``index``."""
        _ip("link", "set", self._link(index), "up")

    def close(self) -> None:
        """Delete every host (their veth pairs go with them) and the bridge."""
        for index, ns in enumerate(self.hosts):
            # Deleting our end removes the pair now; a namespace's own links go later, async.
            _ip("link", "del", self._link(index), check=False)
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)


@contextlib.contextmanager
def network(hosts: int) -> Iterator[Network]:
    """A bridge and ``hosts`` hosts, all removed on exit (whatever happened)."""
    require_netns()
    net = Network(tag=f"{os.getpid() % 100000:05d}", prefix=_free_subnet())
    try:
        _ip("link", "add", net.bridge, "type", "bridge")
        _ip("addr", "add", f"{net.gateway}/24", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        for _ in range(hosts):
            net.add_host()
        yield net
    finally:
        net.close()
