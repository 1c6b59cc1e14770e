"""The front door HTTP service: ``regio frontdoor`` and its join API.

- :mod:`geo.frontdoor.service`: the join decision without HTTP (validation, rate limit, GeoIP,
  residency-first selection, placement, TURN credentials, join token).
- :mod:`geo.frontdoor.snapshot` and :mod:`geo.frontdoor.rooms`: the cluster and room caches a
  join reads, so a join of an existing room never waits on etcd.
- :mod:`geo.frontdoor.app`: the ASGI app (raw fast path for joins, Starlette for the rest).
- :mod:`geo.frontdoor.server`: wiring etcd views, GeoIP and Hypercorn under Trio.
- :mod:`geo.frontdoor.tls`, :mod:`geo.frontdoor.ratelimit`, :mod:`geo.frontdoor.metrics`,
  :mod:`geo.frontdoor.config`, :mod:`geo.frontdoor.cli`.
"""
