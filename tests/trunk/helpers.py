"""Trunk test helpers: a cluster CA in a temp directory and two sessions wired in memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from control.cluster_ca import create_ca, issue_node_certificate
from router.trunk.messages import Hello
from router.trunk.quic import TrunkIdentity, initial_destination_cid, new_connection
from router.trunk.session import TrunkConfig, TrunkEvent, TrunkSession

A_ADDR = ("127.0.0.1", 4001)
B_ADDR = ("127.0.0.1", 4002)


def identities(tmp: Path, *nodes: str, ca_dir: str = "ca") -> dict[str, TrunkIdentity]:
    create_ca(tmp / ca_dir)
    out = {}
    for node in nodes:
        creds = issue_node_certificate(tmp / ca_dir, node, tmp / ca_dir / "nodes")
        out[node] = TrunkIdentity.load(creds.cert, creds.key, creds.ca)
    return out


class Wire:
    """A client session (dialling ``server_node``) and the server session created from the
    client's first datagram, exchanging datagrams in memory at a virtual ``now``."""

    def __init__(self, client_id: TrunkIdentity, server_id: TrunkIdentity, *,
                 client_node: str = "rA", server_node: str = "rB",
                 registered: Callable[[str], bool] = lambda node: True,
                 server_ca: TrunkIdentity | None = None,
                 config: TrunkConfig | None = None) -> None:
        self.now = 0.0
        self.config = config or TrunkConfig()
        self.server_identity = server_id
        self.server_ca = (server_ca or server_id).ca
        self.registered = registered
        self.server_node = server_node
        conn = new_connection(client_id, is_client=True, server_name=server_node,
                              idle_timeout=self.config.idle_timeout)
        self.client = TrunkSession(conn, local=Hello(client_node, "eu-west", "EEA"),
                                   ca=client_id.ca, is_registered=registered,
                                   peer_address=B_ADDR, now=0.0, expected_peer=server_node,
                                   config=self.config)
        self.server: TrunkSession | None = None
        self.client_events: list[TrunkEvent] = []
        self.server_events: list[TrunkEvent] = []
        self.drop: Callable[[bytes, str], bool] = lambda data, direction: False

    def _server_for(self, data: bytes) -> TrunkSession | None:
        if self.server is None:
            cid = initial_destination_cid(data)
            if cid is None:
                return None
            conn = new_connection(self.server_identity, is_client=False, server_name="",
                                  idle_timeout=self.config.idle_timeout, original_cid=cid)
            self.server = TrunkSession(conn, local=Hello(self.server_node, "eu-north", "EEA"),
                                       ca=self.server_ca, is_registered=self.registered,
                                       peer_address=A_ADDR, now=self.now, config=self.config)
        return self.server

    def pump(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            moved = False
            for data, _ in self.client.datagrams_to_send(self.now):
                moved = True
                if not self.drop(data, "a->b"):
                    server = self._server_for(data)
                    if server is not None:
                        server.receive_datagram(data, A_ADDR, self.now)
            if self.server is not None:
                for data, _ in self.server.datagrams_to_send(self.now):
                    moved = True
                    if not self.drop(data, "b->a"):
                        self.client.receive_datagram(data, B_ADDR, self.now)
            self._collect()
            if not moved:
                return

    def _collect(self) -> None:
        while (e := self.client.next_event()) is not None:
            self.client_events.append(e)
        if self.server is not None:
            while (e := self.server.next_event()) is not None:
                self.server_events.append(e)

    def settle(self) -> None:
        """Let 300 ms of virtual time pass in small steps (aioquic paces its sends)."""
        self.advance(0.3, step=0.005)

    def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for session in (self.client, self.server):
                if session is not None:
                    deadline = session.get_timer()
                    if deadline is not None and deadline <= self.now:
                        session.handle_timer(self.now)
            self.pump()
