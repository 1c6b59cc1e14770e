"""Trunks between routers (docs/architecture.md §10): a QUIC control connection with mutual
TLS 1.3 over the cluster CA, and SRTP (AEAD_AES_128_GCM) media over UDP on the routers' media
ports. The cores here are sans-IO; :mod:`router.trunk.service` drives them with Trio."""
