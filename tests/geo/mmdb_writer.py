"""A minimal MaxMind DB (format 2.0) writer for test fixtures.

``maxminddb`` only reads, and the writers on PyPI pull in extra dependencies, so tests build
their small databases with this: enough of the format (search tree with 24-bit records, data
section with maps, strings, unsigned ints, booleans, doubles and arrays, typed metadata) for
libmaxminddb's C reader and the pure-Python reader to accept the result. Databases are written
at test time, so no binary fixture needs reviewing.

Spec: https://maxmind.github.io/MaxMind-DB/
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class Uint16(int):
    pass


class Uint32(int):
    pass


class Uint64(int):
    pass


def _control(type_number: int, size: int) -> bytes:
    if size < 29:
        first, extra = size, b""
    elif size < 29 + 256:
        first, extra = 29, bytes([size - 29])
    elif size < 285 + 65536:
        first, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        first, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_number <= 7:
        return bytes([(type_number << 5) | first]) + extra
    return bytes([first, type_number - 7]) + extra


def _uint(type_number: int, value: int) -> bytes:
    payload = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return _control(type_number, len(payload)) + payload


def encode(value: Any) -> bytes:
    """One value in the MaxMind DB data format."""
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, Uint16):
        return _uint(5, value)
    if isinstance(value, Uint64):
        return _uint(9, value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative ints are not needed by these fixtures")
        return _uint(6 if value < 2**32 else 9, value)
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _control(2, len(raw)) + raw
    if isinstance(value, bytes):
        return _control(4, len(value)) + value
    if isinstance(value, Mapping):
        out = [_control(7, len(value))]
        for key, item in value.items():
            out.append(encode(str(key)))
            out.append(encode(item))
        return b"".join(out)
    if isinstance(value, list | tuple):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


class _Node:
    __slots__ = ("children",)

    def __init__(self, left: Any = None, right: Any = None) -> None:
        self.children: list[Any] = [left, right]


class _Data:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def write_mmdb(
    path: str | Path,
    networks: Iterable[tuple[str, Any]],
    *,
    database_type: str = "test-country",
    ip_version: int = 6,
    description: str = "regio test fixture",
    build_epoch: int = 1_700_000_000,
) -> Path:
    """Write a database mapping each CIDR to its record. Later, more specific networks
    override earlier, wider ones where they overlap. IPv4 networks live at ::/96 in an IPv6
    tree, as in MaxMind's own databases."""
    bits = 128 if ip_version == 6 else 32
    root = _Node()
    records: list[bytes] = []
    offsets: list[int] = []
    seen: dict[bytes, int] = {}
    data_size = 0
    for cidr, record in networks:
        net = ipaddress.ip_network(cidr)
        encoded = encode(record)
        if encoded not in seen:
            seen[encoded] = len(records)
            records.append(encoded)
            offsets.append(data_size)
            data_size += len(encoded)
        leaf = _Data(seen[encoded])
        value, plen = int(net.network_address), net.prefixlen
        if net.version == 4 and bits == 128:
            plen += 96
        elif net.version == 6 and bits == 32:
            raise ValueError("IPv6 network in an IPv4 database")
        if plen == 0:
            raise ValueError("a /0 network is not supported")
        node = root
        for depth in range(plen):
            bit = (value >> (bits - 1 - depth)) & 1  # IPv4 in a 128-bit tree: 96 zeros first
            if depth == plen - 1:
                node.children[bit] = leaf
                break
            child = node.children[bit]
            if not isinstance(child, _Node):
                child = _Node(child, child)  # split a wider leaf (or emptiness)
                node.children[bit] = child
            node = child

    ordered: list[_Node] = []
    ids: dict[int, int] = {}
    queue = [root]
    while queue:
        node = queue.pop(0)
        ids[id(node)] = len(ordered)
        ordered.append(node)
        queue.extend(c for c in node.children if isinstance(c, _Node))
    node_count = len(ordered)

    def record_value(child: Any) -> int:
        if isinstance(child, _Node):
            return ids[id(child)]
        if isinstance(child, _Data):
            return node_count + 16 + offsets[child.index]
        return node_count

    tree = b"".join(
        record_value(n.children[0]).to_bytes(3, "big")
        + record_value(n.children[1]).to_bytes(3, "big")
        for n in ordered
    )
    metadata = {
        "binary_format_major_version": Uint16(2),
        "binary_format_minor_version": Uint16(0),
        "build_epoch": Uint64(build_epoch),
        "database_type": database_type,
        "description": {"en": description},
        "ip_version": Uint16(ip_version),
        "languages": ["en"],
        "node_count": Uint32(node_count),
        "record_size": Uint16(24),
    }
    path = Path(path)
    path.write_bytes(
        tree + bytes(16) + b"".join(records) + b"\xab\xcd\xefMaxMind.com" + encode(metadata)
    )
    return path
