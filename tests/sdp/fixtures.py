"""Fixture loading and shared builders for the SDP tests."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"


def load(name: str) -> str:
    """A fixture's SDP with its ``#`` provenance lines removed and CRLF line ends restored."""
    lines = DATA.joinpath(name).read_text(encoding="utf-8").splitlines()
    return "".join(line + "\r\n" for line in lines if not line.startswith("#"))


ALL_FIXTURES = sorted(p.name for p in DATA.glob("*.sdp"))
OFFER_FIXTURES = [name for name in ALL_FIXTURES if name.endswith("_offer.sdp")]
SUBSCRIBER_ANSWERS = sorted(n for n in ALL_FIXTURES if n.startswith("chromium_subscriber_answer_"))
