"""GeoIP lookups per second on the embedded database (target: 200,000/s on one core).

The address set is fixed and pseudo-random (seeded), mostly public IPv4 and IPv6 with some
private and IPv4-embedding forms, as a front door behind a proxy would see them. Lookups go
through :class:`geo.geoip.GeoIP`, the path a join takes: classification, the reload check and
the database read. No cache: every address in the set is distinct, so a cache would only
measure itself.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from geo.geoip import DEFAULT_DATABASE, GeoIP

ADDRESS_COUNT = 20_000
SEED = 20240601
#: /12 blocks the RIRs allocate from (APNIC 2400::, ARIN 2600::, LACNIC 2800::, RIPE 2a00::),
#: so IPv6 lookups mostly hit allocated space, as real clients do.
RIR_IPV6_BLOCKS = (0x240, 0x260, 0x280, 0x2A0)


def address_set(count: int = ADDRESS_COUNT, seed: int = SEED) -> list[str]:
    """``count`` distinct address literals: 70% IPv4, 20% IPv6 from RIR blocks, 10% IPv4-mapped
    or private."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        roll = rng.random()
        if roll < 0.70:
            text = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        elif roll < 0.90:
            prefix = rng.choice(RIR_IPV6_BLOCKS)
            text = str(ipaddress.IPv6Address((prefix << 116) | rng.getrandbits(116)))
        elif roll < 0.95:
            text = f"::ffff:{ipaddress.IPv4Address(rng.getrandbits(32))}"
        else:
            text = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def run(seconds: float = 2.0, db: str | Path = DEFAULT_DATABASE) -> dict[str, Any]:
    """Look addresses up for about ``seconds``; lookups per second and the outcome mix."""
    geo = GeoIP(db)
    addresses = address_set()
    lookup = geo.lookup
    for address in addresses[:1000]:  # warm the page cache and the code paths
        lookup(address)
    geo.stats.clear()
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for address in addresses:
            lookup(address)
        done += len(addresses)
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - started
    outcomes = Counter({k: v for k, v in geo.stats.items() if k not in ("reloads",)})
    info = geo.info
    geo.close()
    return {
        "lookups": done,
        "seconds": round(elapsed, 3),
        "lookups_per_second": round(done / elapsed),
        "target_per_second": 200_000,
        "addresses": len(addresses),
        "database": str(db),
        "database_type": info.database_type if info else None,
        "outcomes": dict(sorted(outcomes.items())),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0), indent=2))
