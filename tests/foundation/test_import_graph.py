"""The TURN server's modules import each other without cycles (issue 15: the core and the
request handler, the server and its drivers, each imported the other). Checked on the real
import graph, type-checking imports included, so a cycle cannot come back unnoticed."""

from __future__ import annotations

import itertools

import grimp


def test_turn_server_modules_form_no_cycle() -> None:
    graph = grimp.build_graph("turn", "control")
    modules = sorted(m for m in graph.modules if m.startswith("turn.server"))
    assert "turn.server.core" in modules and "turn.server.requests" in modules
    cycles = [
        (a, b) for a, b in itertools.combinations(modules, 2)
        if graph.find_shortest_chain(importer=a, imported=b)
        and graph.find_shortest_chain(importer=b, imported=a)
    ]
    assert cycles == []
