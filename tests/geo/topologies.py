"""Topologies shared by the selection tests."""

from __future__ import annotations

from control.topology import Topology, parse_topology

WORLD = parse_topology(
    """
[regions.eu-central]
jurisdiction = "EEA"
location = [50.11, 8.68]
[regions.eu-north]
jurisdiction = "EEA"
location = [59.33, 18.07]
[regions.us-east]
jurisdiction = "US"
location = [38.9, -77.0]
[regions.ap-northeast]
jurisdiction = "JP"
location = [35.68, 139.69]
[regions.sa-east]
jurisdiction = "BR"
location = [-23.55, -46.63]
""",
    "world.toml",
)

#: A second restricted jurisdiction: Swiss clients stay in Switzerland.
WITH_SWISS = parse_topology(
    """
fail_closed_jurisdiction = "EEA"
[jurisdictions.EEA]
restricted = true
[jurisdictions.SWISS]
restricted = true
countries = ["CH"]
[regions.eu-central]
jurisdiction = "EEA"
location = [50.11, 8.68]
[regions.ch-zurich]
jurisdiction = "SWISS"
location = [47.37, 8.54]
[regions.us-east]
jurisdiction = "US"
location = [38.9, -77.0]
""",
    "swiss.toml",
)

TOPOLOGIES: tuple[Topology, ...] = (WORLD, WITH_SWISS)
