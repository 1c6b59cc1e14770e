"""The namespace-host library on the real kernel: addresses, reachability, loss, partitions,
cleanup. Packets are counted between in-order markers, so no test waits a fixed time."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from control import netns
from control.netns import Impairment, NetnsError, Network

PROBE = str(Path(__file__).with_name("udpprobe.py"))
PORT = 40000


class Receiver:
    """The probe's receiving side inside a host; reads its report lines."""

    def __init__(self, net: Network, host: str) -> None:
        self.process = net.popen(host, [sys.executable, PROBE, "recv", str(PORT)],
                                 stdout=subprocess.PIPE)
        assert self.line() == "ready"

    def line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().decode().strip()

    def report(self, tag: str) -> int:
        got_tag, count = self.line().split()
        assert got_tag == tag
        return int(count)


def send(net: Network, src: str, dst: str, count: int, tag: str | None = None) -> None:
    cmd = [sys.executable, PROBE, "send", net.host(dst).address, str(PORT), str(count)]
    subprocess.run(net.host(src).command(cmd + ([tag] if tag else [])), check=True)


@pytest.fixture
def net() -> Iterator[Network]:
    with netns.network(["a", "b", "c"]) as network:
        yield network


def test_hosts_get_prefixed_names_and_addresses_in_the_benchmark_range(net: Network) -> None:
    assert net.subnet is not None and net.subnet.subnet_of(netns.BENCH_RANGE)
    assert net.name.startswith("rg-") and len(net.name) == 9
    names = netns.list_namespaces()
    for host in net.hosts.values():
        assert host.netns == f"{net.name}-{host.name}" and host.netns in names
        assert ipaddress.ip_address(host.address) in net.subnet
        assert host.interface.startswith(net.name)
    assert len({h.address for h in net.hosts.values()}) == 3
    # Loopback is up inside a host, and nothing was added to this (the root) namespace.
    out = subprocess.run(["ip", "-n", net.host("a").netns, "-j", "link", "show", "lo"],
                         capture_output=True, text=True, check=True).stdout
    assert '"UP"' in out
    root = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True,
                          check=True).stdout
    assert net.name not in root and str(net.subnet.network_address)[:-1] not in root
    # A second network at the same time picks another /24.
    with Network() as other:
        assert other.subnet != net.subnet and other.name != net.name


def test_partition_cuts_both_ways_and_heal_restores(net: Network) -> None:
    at_b, at_a = Receiver(net, "b"), Receiver(net, "a")
    send(net, "a", "b", 5, "warm")
    assert at_b.report("warm") == 5
    net.partition("a", "b")
    assert net.impairments() == {("a", "b"): Impairment("a", "b", cut=True),
                                 ("b", "a"): Impairment("b", "a", cut=True)}
    send(net, "a", "b", 50)
    send(net, "b", "a", 50)
    send(net, "c", "b", 7, "third")  # other links are untouched
    assert at_b.report("third") == 7
    net.heal("a", "b")
    assert net.impairments() == {}
    send(net, "a", "b", 3, "healed")
    send(net, "b", "a", 2, "healed")
    assert at_b.report("healed") == 3  # the 50 sent during the partition never arrived
    assert at_a.report("healed") == 2


def test_loss_drops_about_the_given_share_one_way(net: Network) -> None:
    at_b = Receiver(net, "b")
    at_a = Receiver(net, "a")
    send(net, "a", "b", 1, "warm")
    assert at_b.report("warm") == 1
    net.set_loss("a", "b", 30, both_ways=False)
    net.partition("a", "c")
    assert net.impairments()[("a", "b")] == Impairment("a", "b", loss=30)
    sent = 2000
    send(net, "a", "b", sent)
    send(net, "b", "a", 100)
    net.set_loss("a", "b", 0)
    net.heal("a", "c")
    send(net, "a", "b", 0, "lossy")
    send(net, "b", "a", 0, "clean")
    received = at_b.report("lossy")
    # Binomial(2000, 0.7): mean 1400, sd 20.5; the bounds are ten sd away.
    assert 1195 < received < 1605, received
    assert at_a.report("clean") == 100
    assert net.impairments() == {}


def test_partition_keeps_loss_and_heal_all_clears(net: Network) -> None:
    net.set_loss("a", "b", 10)
    net.partition("a", "b")
    net.heal("a", "b")
    assert net.impairments()[("b", "a")] == Impairment("b", "a", loss=10)
    attached = Network.attach(net.to_dict())
    assert attached.impairments() == net.impairments()
    attached.heal_all()
    assert net.impairments() == {}
    attached.close()  # an attached handle never deletes what it does not own
    assert net.switch_netns in netns.list_namespaces()


def test_bad_requests_change_nothing(net: Network) -> None:
    net.set_loss("a", "b", 5)
    before = net.impairments()
    with pytest.raises(ValueError):
        net.set_loss("a", "b", 101)
    with pytest.raises(NetnsError, match="no host 'zz'"):
        net.partition("a", "zz")
    with pytest.raises(ValueError):
        net.partition("a", "a")
    with pytest.raises(ValueError):
        net.add_host("a")
    with pytest.raises(ValueError):
        net.add_host("Bad Name")
    assert net.impairments() == before


def test_close_removes_everything_even_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), Network() as net:
        net.add_hosts(["x", "y"])
        sleeper = net.popen("x", ["sleep", "600"])
        names = [h.netns for h in net.hosts.values()] + [net.switch_netns]
        raise RuntimeError("boom")
    assert sleeper.poll() is not None
    left = set(netns.list_namespaces())
    assert not left & set(names)
    assert not (netns.STATE_DIR / f"{net.name}.json").exists()


def test_processes_run_inside_hosts_and_stop_by_pid(net: Network) -> None:
    async def main() -> bytes:
        done = await net.run("c", ["ip", "-4", "-o", "addr", "show"])
        return bytes(done.stdout)

    out = trio.run(main).decode()
    assert net.host("c").address in out and net.host("a").address not in out
    proc = net.popen("a", ["sleep", "600"])
    deadline = time.monotonic() + 30  # until setpriv and `ip netns exec` have exec'd sleep
    while str(proc.pid) not in subprocess.run(["ip", "netns", "pids", net.host("a").netns],
                                              capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, "the process never entered host a"
        time.sleep(0.02)
    net.stop(proc.pid)
    assert proc.returncode is not None


def test_without_root_a_clear_error_and_nothing_created() -> None:
    code = "from control.netns import Network; Network().create()"
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode != 0
    assert "need root" in done.stderr and "NotRootError" in done.stderr


def test_sweep_removes_networks_whose_creator_was_killed() -> None:
    code = ("import sys, time\nfrom control.netns import Network\n"
            "net = Network(); net.create(); net.add_host('a')\n"
            "print(net.name, flush=True); time.sleep(600)\n")
    creator = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    try:
        assert creator.stdout is not None
        name = creator.stdout.readline().strip()
        assert f"{name}-a" in netns.list_namespaces()
        assert name not in netns.sweep_stale()  # its creator still runs: left alone
    finally:
        creator.kill()
        creator.wait()
    assert name in netns.sweep_stale()
    assert not [ns for ns in netns.list_namespaces() if ns.startswith(f"{name}-")]


def test_loss_can_spare_short_packets(net: Network) -> None:
    """``min_bytes``: the loss hits only long packets (the probe's datagrams are short)."""
    at_b = Receiver(net, "b")
    net.set_loss("a", "b", 99, both_ways=False, min_bytes=1000)
    assert net.impairments() == {("a", "b"): Impairment("a", "b", loss=99, min_bytes=1000)}
    send(net, "a", "b", 50, "short")
    assert at_b.report("short") == 50
    with pytest.raises(ValueError):
        net.set_loss("a", "b", 10, min_bytes=70000)
