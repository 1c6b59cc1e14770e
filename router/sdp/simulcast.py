"""RTP stream identifiers (``a=rid``, RFC 8851) and simulcast (``a=simulcast``, RFC 8853).

A simulcasting publisher sends several encodings of one track on one m-section, each tagged with
a rid in the ``sdes:rtp-stream-id`` header extension instead of a signalled SSRC. The SFU answers
``recv`` for each offered ``send`` rid so it can pick a layer per subscriber later.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.sdp.errors import SdpError
from router.sdp.model import _clip

__all__ = ["Rid", "Simulcast", "SimulcastStream", "is_rid_id"]

_RID_EXTRA = frozenset("-_")


def is_rid_id(text: str) -> bool:
    """RFC 8851 rid-id: ``1*(ALPHA / DIGIT / "-" / "_")``."""
    return bool(text) and text.isascii() and all(ch.isalnum() or ch in _RID_EXTRA for ch in text)


@dataclass(frozen=True, slots=True)
class Rid:
    """``a=rid:<id> <send|recv> [<restrictions>]``; restrictions are kept as written."""

    id: str
    direction: str
    restrictions: str | None = None

    @classmethod
    def parse(cls, value: str | None, line: int) -> Rid:
        """Parse the attribute value."""
        parts = (value or "").split(maxsplit=2)
        if len(parts) < 2:
            raise SdpError(
                f"bad a=rid value {_clip(value or '')}: expected '<id> <send|recv>'", line
            )
        if not is_rid_id(parts[0]):
            raise SdpError(f"bad rid id {_clip(parts[0])}: letters, digits, '-' and '_' only", line)
        if parts[1] not in ("send", "recv"):
            raise SdpError(f"bad a=rid direction {_clip(parts[1])}: expected send or recv", line)
        return cls(parts[0], parts[1], parts[2] if len(parts) > 2 else None)

    def value(self) -> str:
        """The attribute value."""
        tail = f" {self.restrictions}" if self.restrictions else ""
        return f"{self.id} {self.direction}{tail}"

    def payload_types(self) -> tuple[int, ...] | None:
        """The ``pt=`` restriction as numbers, or None when absent or unreadable."""
        for item in (self.restrictions or "").split(";"):
            key, _, val = item.partition("=")
            if key.strip() == "pt":
                numbers = [p.strip() for p in val.split(",")]
                if all(n.isascii() and n.isdigit() and int(n) < 128 for n in numbers):
                    return tuple(int(n) for n in numbers)
                return None
        return None


@dataclass(frozen=True, slots=True)
class SimulcastStream:
    """One rid in a simulcast list; ``paused`` is the ``~`` prefix."""

    rid: str
    paused: bool = False

    def text(self) -> str:
        """``[~]rid``."""
        return f"~{self.rid}" if self.paused else self.rid


Alternatives = tuple[SimulcastStream, ...]
"""Comma-separated rids: alternative formats of one simulcast stream."""


def _parse_list(text: str, line: int) -> tuple[Alternatives, ...]:
    if text.startswith("rid="):
        raise SdpError("draft-era 'rid=' simulcast syntax is not supported (use RFC 8853)", line)
    streams: list[Alternatives] = []
    for group in text.split(";"):
        alternatives: list[SimulcastStream] = []
        for item in group.split(","):
            paused = item.startswith("~")
            rid = item[1:] if paused else item
            if not is_rid_id(rid):
                raise SdpError(f"bad rid {_clip(item)} in a=simulcast", line)
            alternatives.append(SimulcastStream(rid, paused))
        streams.append(tuple(alternatives))
    return tuple(streams)


def _format_list(streams: tuple[Alternatives, ...]) -> str:
    return ";".join(",".join(s.text() for s in alts) for alts in streams)


@dataclass(frozen=True, slots=True)
class Simulcast:
    """``a=simulcast:[send <list>] [recv <list>]``: each list is ``;``-separated streams."""

    send: tuple[Alternatives, ...] = ()
    recv: tuple[Alternatives, ...] = ()

    @classmethod
    def parse(cls, value: str | None, line: int) -> Simulcast:
        """Parse the attribute value; each direction at most once, at least one present."""
        parts = (value or "").split()
        if len(parts) not in (2, 4):
            raise SdpError(
                f"bad a=simulcast value {_clip(value or '')}: expected 'send <rids>' "
                "and/or 'recv <rids>'",
                line,
            )
        lists: dict[str, tuple[Alternatives, ...]] = {}
        for direction, text in zip(parts[::2], parts[1::2], strict=True):
            if direction not in ("send", "recv"):
                raise SdpError(f"bad a=simulcast direction {_clip(direction)}", line)
            if direction in lists:
                raise SdpError(f"a=simulcast lists '{direction}' twice", line)
            lists[direction] = _parse_list(text, line)
        return cls(lists.get("send", ()), lists.get("recv", ()))

    def value(self) -> str:
        """The attribute value."""
        parts = []
        if self.send:
            parts.append(f"send {_format_list(self.send)}")
        if self.recv:
            parts.append(f"recv {_format_list(self.recv)}")
        return " ".join(parts)

    def rids(self, direction: str) -> tuple[str, ...]:
        """Every rid named in the ``send`` or ``recv`` list, in order."""
        streams = self.send if direction == "send" else self.recv
        return tuple(s.rid for alts in streams for s in alts)

    def reversed(self) -> Simulcast:
        """The mirror for an answer: the offer's send list becomes our recv list."""
        return Simulcast(send=self.recv, recv=self.send)
