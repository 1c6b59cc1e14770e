"""Inputs that crashed a component, replayed through the fuzz targets (which allow only the
component's own error type out).

None of these was found by the harnesses themselves (their runs so far, about 90 s each, found
no crash); they are the inputs of issue 15's review that made the pre-fix code raise, kept here
so the targets check them on every run (five of the seven raise through the targets on the
pre-fix code). A crash a fuzzing run finds is added the same way: its bytes, the target, and
what it broke.
"""

from __future__ import annotations

import base64
import json

import pytest

from fuzzing.targets import TARGETS

_NESTED_HEADER = base64.urlsafe_b64encode(b"[" * 2900).rstrip(b"=")

CASES = [
    # item 5: a join body nested past the recursion limit was a 500 with a traceback
    ("frontdoor_http", b"[" * 3000),
    ("frontdoor_http", b"POST /v1/rooms/r/join HTTP/1.1\r\nHost: h\r\nContent-Length: 3000"
                       b"\r\n\r\n" + b"[" * 3000),
    # item 5: an integer literal past the interpreter's 4,300-digit limit (ValueError)
    ("frontdoor_http", b'{"name":' + b"1" * 4400 + b"}"),
    ("signaling", b'{"type":"ping","id":' + b"1" * 5000 + b"}"),
    # item 5: a join token whose header nests arrays (decoded before the signature check)
    ("signaling", json.dumps({"type": "join",
                              "token": _NESTED_HEADER.decode() + ".e30.c2ln"}).encode()),
    # item 5: a relayed payload nested 900 deep (accepted and re-encoded before; refused now)
    ("signaling", b'{"type":"join","token":"@token@"}\n{"type":"relay","payload":{"kind":'
                  b'"candidate","c":' + b"[" * 900 + b"]" * 900 + b"}}"),
    # item 8: a bare-LF request line (refused at once now; before, the parser waited)
    ("frontdoor_http", b"GET / HTTP/1.1\nHost: h\n\n"),
]


@pytest.mark.parametrize(("target", "data"), CASES,
                         ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_known_crashers(target: str, data: bytes) -> None:
    TARGETS[target](data)
