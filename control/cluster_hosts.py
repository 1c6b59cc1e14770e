"""``regio cluster up --hosts``: the local cluster spread over namespace hosts, and the commands
that act on it later (``partition``, ``heal``, ``loss``, ``kill``, ``exec``).

Every region's nodes run on their own host (named after the region), a three-member etcd on
``etcd-1``..``etcd-3``, the front door on ``frontdoor``; this process itself moves into the
``ops`` host, from which it (and ``regio cluster exec``) reaches everything. Hosts are
namespaces on a private bridge (:mod:`control.netns`), so cutting a link is an nftables rule
and nothing touches the machine's network. Nodes listen on and advertise their host's address;
as that is not loopback they serve TLS, with certificates from a throwaway CA
(:mod:`control.labpki`) whose file clients trust.

The running cluster is described by ``cluster.json`` in its state directory (default
``/run/regio-cluster``): the network (so other processes attach to it), etcd members, nodes and
their pids. Later commands read it; ``up`` removes it on the way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.cluster_up import FRONTDOOR, ClusterUp, ClusterUpConfig, NodePlan, command_for
from control.labpki import make_ca, write_cert, write_leaf
from control.localetcd import LocalEtcd, Member, die_with_parent
from control.netns import Host, NetnsError, Network, pid_alive

DEFAULT_STATE_DIR = Path(os.environ.get("REGIO_CLUSTER_STATE", "/run/regio-cluster"))
STATE_FILE = "cluster.json"
ETCD_HOSTS = ("etcd-1", "etcd-2", "etcd-3")
FRONTDOOR_HOST = "frontdoor"
OPS_HOST = "ops"
ROUTER_PORT = 7000
TURN_PORT = 3478
FRONTDOOR_PORT = 8443
ETCD_PORT = 2379
HOST_GROUPS = {"etcd": ETCD_HOSTS}
"""Names that stand for several hosts in ``partition``/``heal``/``loss``."""


class ClusterStateError(RuntimeError):
    """No running hosts cluster where one was expected, or a request it cannot satisfy."""


def host_names(regions: Sequence[str]) -> list[str]:
    """Hosts of a cluster with these regions: one per region, etcd, front door, ops."""
    return [*sorted(regions), *ETCD_HOSTS, FRONTDOOR_HOST, OPS_HOST]


# ------------------------------------------------------------------------------------ etcd
@dataclass(slots=True)
class HostMember(Member):
    """An etcd member running inside a namespace host (and listening on its address)."""

    netns: str = ""


class HostEtcd(LocalEtcd):
    """A :class:`LocalEtcd` whose members run on the given hosts (same ports on each)."""

    def __init__(self, hosts: Sequence[Host], **kwargs: Any) -> None:
        super().__init__(len(hosts), base_port=ETCD_PORT, **kwargs)
        self.hosts = list(hosts)

    def _plan(self, attempt: int) -> None:
        self.members = [
            HostMember(h.name, ETCD_PORT, ETCD_PORT + 1, self.base_dir / f"{h.name}-{attempt}",
                       False, host=h.address, netns=h.netns)
            for h in self.hosts
        ]

    def _launch(self, member: Member) -> None:
        assert isinstance(member, HostMember)
        member.data_dir.mkdir(parents=True, exist_ok=True)
        with open(member.data_dir.with_suffix(".log"), "ab") as log:
            member.process = subprocess.Popen(
                die_with_parent(["ip", "netns", "exec", member.netns,
                                 *self._command(member)]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )


# ------------------------------------------------------------------------------------ up
class HostsClusterUp(ClusterUp):
    """:class:`ClusterUp` with every process on its namespace host; see the module docstring."""

    def __init__(self, config: ClusterUpConfig, net: Network, state_dir: Path,
                 out: Callable[[str], None] = print) -> None:
        super().__init__(config, out)
        self.net = net
        self.state_dir = state_dir
        self.pki_dir = state_dir / "pki"
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        ca = make_ca("regio hosts-cluster CA")
        self.ca_path = write_cert(self.pki_dir / "ca.pem", ca.cert)
        self.certs = {h.name: write_leaf(self.pki_dir, h.name, ca, [h.address])
                      for h in net.hosts.values()}
        self.plan_hosts: dict[str, str] = {}

    async def start_etcd(self) -> LocalEtcd:
        etcd = HostEtcd([self.net.host(n) for n in ETCD_HOSTS],
                        binary=self.config.etcd_binary, base_dir=self.state_dir / "etcd")
        self.state.etcd = etcd
        await etcd.start()
        return etcd

    def plan_all(self, kinds: set[str]) -> list[NodePlan]:
        plans: list[NodePlan] = []
        for region in sorted(self.config.topology.regions.values(), key=lambda r: r.name):
            for kind, count, first in (("router", region.routers, ROUTER_PORT),
                                       ("turn", region.turns, TURN_PORT)):
                if kind in kinds:
                    for i in range(count):
                        plan = NodePlan(f"{region.name}-{kind}-{i + 1}", kind, region.name,
                                        first + 10 * i)
                        plans.append(plan)
                        self.plan_hosts[plan.node_id] = region.name
        if FRONTDOOR in kinds:
            plans.append(NodePlan(FRONTDOOR, FRONTDOOR, None, FRONTDOOR_PORT))
            self.plan_hosts[FRONTDOOR] = FRONTDOOR_HOST
        return plans

    def node_command(self, plan: NodePlan, etcd_url: str) -> list[str]:
        host = self.net.host(self.plan_hosts[plan.node_id])
        # Clients run on the ops host; the front door believes its X-Forwarded-For, so a
        # benchmark can speak for clients of any country.
        trusted = (f"{self.net.host(OPS_HOST).address}/32", *self.config.trusted_proxies)
        cmd = command_for(plan, etcd_url, trusted, host=host.address, peers=str(self.net.subnet),
                          secrets_key=self.secrets_key)
        if plan.kind in ("router", FRONTDOOR) and not _overridden(plan.kind):
            cert, key = self.certs[host.name]
            cmd += ["--tls-cert", cert, "--tls-key", key]
        return host.command(cmd + self.trunk_flags(plan))

    def frontdoor_url(self, plan: NodePlan) -> str:
        return f"https://{self.net.host(FRONTDOOR_HOST).address}:{plan.port}"

    def frontdoor_address(self, plan: NodePlan) -> tuple[str, int]:
        return self.net.host(FRONTDOOR_HOST).address, plan.port

    async def on_ready(self, ready: dict[str, object]) -> None:
        etcd = self.state.etcd
        assert isinstance(etcd, HostEtcd)
        state = {
            "pid": os.getpid(),
            "network": self.net.to_dict(),
            "ops_host": OPS_HOST,
            "ca": self.ca_path,
            "etcd": etcd.urls,
            "frontdoor": ready.get("frontdoor"),
            "etcd_members": [{"name": m.name, "host": m.name, "pid": m.pid,
                              "client_url": m.client_url} for m in etcd.members],
            "nodes": [{"node": r.plan.node_id, "kind": r.plan.kind, "region": r.plan.region,
                       "host": self.plan_hosts[r.plan.node_id],
                       "address": self.net.host(self.plan_hosts[r.plan.node_id]).address,
                       "port": r.plan.port, "pid": r.process.pid}
                      for r in self.state.running],
        }
        write_state(self.state_dir, state)
        ready.update(network=self.net.name, ca=self.ca_path,
                     hosts={h.name: h.address for h in self.net.hosts.values()},
                     state=str(self.state_dir / STATE_FILE))
        if not self.config.json:
            self.out(f"hosts on {self.net.subnet} (network {self.net.name}):")
            for h in self.net.hosts.values():
                self.out(f"  {h.name:<14} {h.address:<15} netns {h.netns}")
            self.out(f"CA for the nodes' TLS: {self.ca_path}")
            self.out("reach it from the ops host: regio cluster exec -- regio cluster status "
                     f"--etcd {etcd.urls}")


def _overridden(kind: str) -> bool:
    return bool(os.environ.get(f"REGIO_CLUSTER_UP_{kind.upper()}"))


# ------------------------------------------------------------------------------------ state
def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_dir / STATE_FILE)


def read_state(state_dir: Path) -> dict[str, Any]:
    """The running cluster's state, or :class:`ClusterStateError` saying what to do."""
    path = state_dir / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterStateError(f"no hosts cluster running (no {path}); start one with "
                                "`regio cluster up --hosts --topology FILE`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ClusterStateError(f"cannot read {path}: {exc}") from None
    if not pid_alive(int(state.get("pid", 0))):
        raise ClusterStateError(f"the cluster of {path} is gone (its `regio cluster up` "
                                f"pid {state.get('pid')} exited); remove the file")
    return state


def claim_state_dir(state_dir: Path) -> None:
    """Refuse to start a second cluster over a running one's state directory."""
    with contextlib.suppress(ClusterStateError):
        state = read_state(state_dir)
        raise ClusterStateError(f"a hosts cluster is already running (pid {state['pid']}, "
                                f"state {state_dir}): stop it or give another --state-dir")
    (state_dir / STATE_FILE).unlink(missing_ok=True)


def attach(state: dict[str, Any]) -> Network:
    try:
        return Network.attach(state["network"])
    except NetnsError as exc:
        raise ClusterStateError(str(exc)) from None


def expand_hosts(net: Network, name: str) -> list[str]:
    """A host name, a node id (its host) or a group (``etcd``) as host names."""
    if name in HOST_GROUPS:
        return list(HOST_GROUPS[name])
    if name in net.hosts:
        return [name]
    raise ClusterStateError(f"no host or group {name!r} (hosts: {', '.join(net.hosts)}; "
                            f"groups: {', '.join(HOST_GROUPS)})")


def host_pairs(net: Network, a: str, b: str) -> list[tuple[str, str]]:
    pairs = [(x, y) for x in expand_hosts(net, a) for y in expand_hosts(net, b) if x != y]
    if not pairs:
        raise ClusterStateError(f"{a} and {b} name the same host")
    return pairs


def find_process(state: dict[str, Any], name: str) -> tuple[int, str]:
    """(pid, host) of node ``name``: a node id, ``frontdoor`` or an etcd member (``etcd-2``)."""
    for node in state["nodes"]:
        if node["node"] == name:
            return int(node["pid"]), str(node["host"])
    for member in state["etcd_members"]:
        if member["name"] == name:
            return int(member["pid"]), str(member["host"])
    names = [n["node"] for n in state["nodes"]] + [m["name"] for m in state["etcd_members"]]
    raise ClusterStateError(f"no node {name!r} in this cluster (nodes: {', '.join(names)})")


def kill_node(state: dict[str, Any], name: str, sig: int = signal.SIGKILL) -> int:
    """Signal node ``name``'s process group; its pid. Refuses a pid that is no longer the
    node's (it exited and the number was reused): the process must live in the node's host."""
    pid, host = find_process(state, name)
    net = attach(state)
    if not pid_alive(pid) or not _in_netns(pid, net.host(host).netns):
        raise ClusterStateError(f"{name} (pid {pid}) is not running")
    os.killpg(pid, sig)
    return pid


def ops_command(state: dict[str, Any], cmd: Sequence[str], host: str = OPS_HOST) -> list[str]:
    """``cmd`` run on ``host`` of the cluster (default the ops host)."""
    return attach(state).host(host).command(cmd)


def _in_netns(pid: int, netns_name: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns_name}").st_ino
    except OSError:
        return False

