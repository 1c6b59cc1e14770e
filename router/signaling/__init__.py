"""The router's WebSocket signaling: the Starlette app, the hub that drives the session core,
and a small client (tests, benchmarks). Message schema: :mod:`router.session.messages`."""
