"""The GeoIP front door's decision logic: from a connection to the nodes a client may use.

- :mod:`geo.client_address` (with :mod:`geo.forwarded`): the real client address behind
  trusted proxies.
- :mod:`geo.addresses`: which addresses may be located; IPv4 forms hidden in IPv6.
- :mod:`geo.geoip` (with :mod:`geo.dbformats`): address -> country, reloading, fail closed.
- :mod:`geo.residency`: country -> jurisdiction and the rule that binds the client.
- :mod:`geo.locations`: country -> point, great-circle distance.
- :mod:`geo.selection`: the allowed router and TURN nodes, nearest first, never a fallback.
- :mod:`geo.update` and :mod:`geo.cli`: ``regio geo lookup`` and ``regio geo update``.
"""
