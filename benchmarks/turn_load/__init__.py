"""``regio bench turn``: a TURN (RFC 8656) load generator that drives any server, ours or coturn.

Layout (small modules, sans-IO core plus thin drivers, ARCHITECTURE.md §3):

- :mod:`credentials` - TURN REST usernames and passwords (coturn's ``use-auth-secret`` form and
  Regio's region-bound form).
- :mod:`client` - the allocation state machine (Allocate with 401/438 handling, CreatePermission,
  ChannelBind, Refresh, close); pure, every entry point takes ``now``.
- :mod:`session` - one worker's sockets and clients: sets up pairs, tears them down.
- :mod:`pump` - the hot loop: paced ChannelData sends and batched receives, no per-packet await.
- :mod:`worker` - a subprocess owning some pairs, so the generator can use more than one core.
- :mod:`runner` - orchestration: workers, start barrier, server CPU sampling, aggregation.
- :mod:`servers`, :mod:`compare`, :mod:`report` - starting coturn / ``regio turn`` by pid, the
  side-by-side run and the printed figures (CPU accounting is :mod:`benchmarks.procstat`).
"""
