"""Helpers the browser tests share: reading the page's state and waiting for media to flow."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from playwright.sync_api import Page

State = dict[str, Any]


def regio(page: Page) -> State:
    """The page's own state (``window.regio``)."""
    value = page.evaluate("window.regio")
    assert isinstance(value, dict)
    return value


def wait_until(pages: Iterable[Page], check: Callable[[State], bool], timeout: float = 20.0,
               what: str = "condition") -> list[State]:
    """Poll ``window.regio`` of every page until ``check`` holds for all of them."""
    pages = list(pages)
    deadline = time.monotonic() + timeout
    states: list[State] = []
    while True:
        states = [regio(p) for p in pages]
        if all(check(s) for s in states):
            return states
        if time.monotonic() > deadline:
            summary = [{k: s.get(k) for k in ("name", "state", "error", "participants",
                                               "remoteVideos", "connection")} for s in states]
            raise AssertionError(f"timed out waiting for {what}: {summary}")
        time.sleep(0.2)


def wait_media(pages: Iterable[Page], timeout: float = 20.0, *, audio: bool = True,
               ) -> float:
    """Wait until every page decodes video from every *other* page's participant (by name:
    ids change when a page rejoins) with ``currentTime`` advancing, and receives audio packets
    at a rising count. Returns the seconds it took."""
    pages = list(pages)
    started = time.monotonic()
    deadline = started + timeout
    first: list[State] | None = None
    names = [regio(p)["name"] for p in pages]
    while True:
        states = [regio(p) for p in pages]
        if first is not None and all(
            _flowing(before, after, {n for n in names if n != after["name"]}, audio)
            for before, after in zip(first, states, strict=True)
        ):
            return time.monotonic() - started
        ready = all(_decoding(s, {n for n in names if n != s["name"]}) for s in states)
        if ready and first is None:
            first = states
            time.sleep(0.6)
            continue
        if not ready:
            first = None
        if time.monotonic() > deadline:
            summary = [{k: s.get(k) for k in ("name", "state", "error", "remoteVideos",
                                               "audioPacketsReceived", "connection")}
                       for s in states]
            raise AssertionError(f"media did not flow within {timeout} s: {summary}")
        time.sleep(0.2)


def _videos_by_name(state: State) -> dict[str, State]:
    return {v["name"]: v for v in state["remoteVideos"]}


def _decoding(state: State, others: set[str]) -> bool:
    videos = _videos_by_name(state)
    return state["state"] == "connected" and set(videos) == others and all(
        videos[n]["videoWidth"] > 0 and videos[n]["currentTime"] > 0 for n in others)


def _flowing(before: State, after: State, others: set[str], audio: bool) -> bool:
    if not _decoding(after, others):
        return False
    old, new = _videos_by_name(before), _videos_by_name(after)
    if any(old[n]["participant"] != new[n]["participant"] for n in others):
        return False
    advancing = all(new[n]["currentTime"] > old[n]["currentTime"] + 0.2 for n in others)
    hearing = not audio or after["audioPacketsReceived"] > before["audioPacketsReceived"]
    return advancing and hearing


__all__ = ["regio", "wait_media", "wait_until"]
