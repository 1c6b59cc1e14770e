"""Data shipped with the geo package (a package so that setuptools installs the files).

- ``geo-whois-asn-country.mmdb``: the embedded default country database (ip-location-db,
  npm ``@ip-location-db/geo-whois-asn-country-mmdb``); licence and attribution in NOTICE.
  Refresh with ``regio geo update``.
- ``country_locations.json``: a representative point per ISO 3166-1 country (derived from the
  ``world-countries`` npm package, ODbL 1.0); source in its header and in NOTICE.
"""
