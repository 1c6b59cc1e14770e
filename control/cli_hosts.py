"""``regio cluster up --hosts`` and the commands acting on such a running cluster:
``regio cluster partition|heal|loss|kill|exec``. See :mod:`control.cluster_hosts`."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from control.clierror import CliError
from control.cluster_hosts import (
    DEFAULT_STATE_DIR,
    OPS_HOST,
    STATE_FILE,
    ClusterStateError,
    HostsClusterUp,
    attach,
    claim_state_dir,
    host_names,
    host_pairs,
    kill_node,
    ops_command,
    read_state,
)
from control.cluster_up import ClusterUpConfig
from control.netns import NetnsError, Network, enter_host, require_root, sweep_stale


def add_hosts_arguments(up: argparse.ArgumentParser) -> None:
    up.add_argument("--hosts", action="store_true",
                    help="root: every region on its own network-namespace host, a 3-member "
                    "etcd on three hosts, the front door on its own host")
    _state_dir_argument(up)


def _state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", metavar="DIR", type=Path, default=DEFAULT_STATE_DIR,
                        help="where a --hosts cluster keeps its state, certificates and etcd "
                        f"data (default $REGIO_CLUSTER_STATE or {DEFAULT_STATE_DIR})")


def add_hosts_commands(sub: Any) -> None:
    part = sub.add_parser("partition", help="cut every packet between hosts A and B "
                          "(a --hosts cluster; group `etcd` = all etcd hosts)")
    heal = sub.add_parser("heal", help="restore the link between hosts A and B (or --all)")
    loss = sub.add_parser("loss", help="drop PERCENT %% of packets between hosts A and B")
    for parser in (part, heal, loss):
        parser.add_argument("a", metavar="A", nargs="?" if parser is heal else None,
                            help="host (region name, etcd-N, frontdoor, ops) or group")
        parser.add_argument("b", metavar="B", nargs="?" if parser is heal else None)
        _state_dir_argument(parser)
    loss.add_argument("percent", metavar="PERCENT", type=int, help="0-100 (0 removes the loss)")
    heal.add_argument("--all", action="store_true", help="remove every partition and loss")
    part.set_defaults(handler=cmd_partition)
    heal.set_defaults(handler=cmd_heal)
    loss.set_defaults(handler=cmd_loss)

    kill = sub.add_parser("kill", help="SIGKILL one node of a --hosts cluster (node id, "
                          "frontdoor or etcd-N)")
    kill.add_argument("node", metavar="NODE")
    _state_dir_argument(kill)
    kill.set_defaults(handler=cmd_kill)

    run = sub.add_parser("exec", help="run a command on a host of a --hosts cluster (default "
                         "the ops host, with $REGIO_ETCD set to the cluster's etcd)")
    run.add_argument("--host", default=OPS_HOST, help=f"host to run on (default {OPS_HOST})")
    _state_dir_argument(run)
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    run.set_defaults(handler=cmd_exec)


def _root(what: str) -> None:
    try:
        require_root(what)
    except NetnsError as exc:
        raise CliError(str(exc)) from None


def _state(args: argparse.Namespace) -> dict[str, Any]:
    _root("commands on a --hosts cluster")
    try:
        return read_state(args.state_dir)
    except ClusterStateError as exc:
        raise CliError(str(exc)) from None


def run_hosts_cluster(config: ClusterUpConfig, state_dir: Path,
                      out: Callable[[str], None]) -> int:
    """Build the hosts, move into the ops host, run the cluster; undo everything on exit."""
    _root("`regio cluster up --hosts`")
    try:
        claim_state_dir(state_dir)
    except ClusterStateError as exc:
        raise CliError(str(exc)) from None
    sweep_stale()  # hosts of earlier runs whose `up` was SIGKILLed
    net = Network()
    try:
        net.create()
        net.add_hosts(host_names(list(config.topology.regions)))
        enter_host(net.host(OPS_HOST).netns)
        return trio.run(HostsClusterUp(config, net, state_dir, out).run)
    except NetnsError as exc:
        raise CliError(str(exc)) from None
    finally:
        # A second Ctrl-C or a SIGTERM must not cut the teardown short and leave hosts behind.
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            net.close()
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            for sub in ("pki", "etcd"):
                shutil.rmtree(state_dir / sub, ignore_errors=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _impair(args: argparse.Namespace, apply: Callable[[Network, str, str], None],
            done: str) -> int:
    net = attach_or_fail(_state(args))
    try:
        pairs = host_pairs(net, args.a, args.b)
        for a, b in pairs:
            if (b, a) not in pairs or a < b:
                apply(net, a, b)
    except (ClusterStateError, NetnsError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"{done}: {args.a} <-> {args.b} ({len(pairs)} host pairs)")
    return 0


def attach_or_fail(state: dict[str, Any]) -> Network:
    try:
        return attach(state)
    except ClusterStateError as exc:
        raise CliError(str(exc)) from None


def cmd_partition(args: argparse.Namespace) -> int:
    return _impair(args, Network.partition, "partitioned")


def cmd_heal(args: argparse.Namespace) -> int:
    if args.all:
        if args.a is not None:
            raise CliError("give A B or --all, not both")
        attach_or_fail(_state(args)).heal_all()
        print("healed: every link")
        return 0
    if args.a is None or args.b is None:
        raise CliError("give two hosts A B (or --all)")
    return _impair(args, Network.heal, "healed")


def cmd_loss(args: argparse.Namespace) -> int:
    if not 0 <= args.percent <= 100:
        raise CliError("PERCENT must be 0-100")
    return _impair(args, lambda net, a, b: net.set_loss(a, b, args.percent),
                   f"loss {args.percent}%")


def cmd_kill(args: argparse.Namespace) -> int:
    state = _state(args)
    try:
        pid = kill_node(state, args.node, signal.SIGKILL)
    except (ClusterStateError, NetnsError) as exc:
        raise CliError(str(exc)) from None
    print(f"killed {args.node} (pid {pid}) with SIGKILL")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise CliError("give the command after --, e.g. regio cluster exec -- regio top")
    state = _state(args)
    try:
        full = ops_command(state, cmd, args.host)
    except (ClusterStateError, NetnsError) as exc:
        raise CliError(str(exc)) from None
    env = dict(os.environ, REGIO_ETCD=state["etcd"], REGIO_CLUSTER_CA=state["ca"])
    return subprocess.run(full, env=env, check=False).returncode
