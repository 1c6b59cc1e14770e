"""Fixtures for the browser tests: the namespace (package), Chromium (package), one cluster per
module, and a factory of meeting participants (one browser context each).

Order matters: the namespace is entered before anything else starts, so the cluster, the
playwright driver and Chromium are all inside it; it is left after they all stopped.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Cluster,
    Netns,
    enter_netns,
    leave_netns,
    start_cluster,
)

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Response, sync_playwright
except ImportError:  # pragma: no cover - playwright is a dev dependency
    sync_playwright = None  # type: ignore[assignment]


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    if shutil.which("etcd") is None and not os.access("/usr/bin/etcd", os.X_OK):
        return "etcd is not installed (apt-get install etcd-server)"
    return None


# Module scope, not package: a thread created while the test process is inside the namespace
# stays there (setns(2) moves one thread), and a Trio worker thread cached by a later trio test
# would then spawn its subprocesses in a deleted namespace. Only the browser module enters it.
@pytest.fixture(scope="module")
def netns() -> Iterator[Netns]:
    reason = _skip_reason()
    if reason:
        # Declared dependencies (make setup installs them): missing is a failure, not a skip.
        pytest.fail(f"{reason}: run `make setup`")
    ns = enter_netns()
    print(f"\nbrowser tests: {ns.reason}" + (f" ({ns.name})" if ns.name else ""))
    if ns.name is None:
        message = (f"browser tests are NOT isolated in a network namespace ({ns.reason}); "
                   "they run on the host's loopback")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            leave_netns(ns)
            pytest.fail(message + ": CI runs as root and must be able to create one")
        warnings.warn(message, stacklevel=1)
    try:
        yield ns
    finally:
        leave_netns(ns)


@pytest.fixture(scope="module")
def browser(netns: Netns) -> Iterator[Browser]:
    assert sync_playwright is not None
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def cluster(netns: Netns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmpdir: Path = tmp_path_factory.mktemp("cluster")
    c = start_cluster(tmpdir)
    try:
        yield c
    finally:
        c.stop()


class Join:
    """``join(room, name, forwarded_for=None, **query)``: a page in its own browser context that
    opened the room's meeting page. ``join.answer(page)`` is the last join answer that page got
    from the front door (the page itself only keeps what is safe to show)."""

    def __init__(self, browser: Browser, cluster: Cluster) -> None:
        self.browser = browser
        self.cluster = cluster
        self.contexts: list[BrowserContext] = []
        self.responses: dict[int, list[Response]] = {}

    def __call__(self, room: str, name: str, forwarded_for: str | None = None,
                 **query: Any) -> Page:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 800}, extra_http_headers=headers,
            permissions=["camera", "microphone"],
        )
        self.contexts.append(context)
        page = context.new_page()
        responses = self.responses.setdefault(id(page), [])
        page.on("response", lambda r: responses.append(r) if r.url.endswith("/join") else None)
        page.on("console", lambda msg: _console(name, msg))
        page.goto(self.cluster.room_url(room, name=name, **{k: str(v) for k, v in query.items()}))
        return page

    def answer(self, page: Page) -> dict[str, Any]:
        responses = self.responses.get(id(page))
        assert responses, "the page made no join request"
        body = responses[-1].json()
        assert isinstance(body, dict)
        return body

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def join(browser: Browser, cluster: Cluster) -> Iterator[Join]:
    participants = Join(browser, cluster)
    yield participants
    participants.close()


def _console(name: str, msg: Any) -> None:
    if msg.type in ("error", "warning"):
        print(f"[{name}] console.{msg.type}: {msg.text}")
