"""SFU forwarding core (sans-IO): route decrypted RTP/RTCP from publishers to subscribers.

See :mod:`router.forwarding.forwarder` for the wiring with the transport layer.
"""

from __future__ import annotations

from router.forwarding.cache import PacketCache
from router.forwarding.config import ForwarderConfig
from router.forwarding.counters import Counters, ForwarderStats
from router.forwarding.forwarder import Forwarder
from router.forwarding.specs import (
    ForwardingUsageError,
    LayerSpec,
    SubscriptionSpec,
    TrackSpec,
    codec_key,
)

__all__ = [
    "Counters",
    "Forwarder",
    "ForwarderConfig",
    "ForwarderStats",
    "ForwardingUsageError",
    "LayerSpec",
    "PacketCache",
    "SubscriptionSpec",
    "TrackSpec",
    "codec_key",
]
