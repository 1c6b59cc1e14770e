"""Take the README's screenshot of a meeting: ``python -m tests.browser.screenshot [PATH]``.

Starts a local cluster (inside a loopback-only network namespace when the machine allows it,
like the browser tests), has three participants join one room in headless Chromium with fake
cameras, exchanges a few chat messages, and saves what the first participant sees to
``docs/meeting.png`` (or PATH). Everything it started is stopped by pid before it exits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.browser.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    enter_netns,
    leave_netns,
    start_cluster,
)
from tests.browser.meeting import wait_media, wait_until

DEFAULT_OUTPUT = REPO / "docs" / "meeting.png"
ROOM = "team-standup"
PEOPLE = ("Alice", "Bruno", "Chiara")
CHAT = (
    (1, "Morning! Can everyone see my screen... I mean camera?"),
    (2, "Loud and clear from Milan."),
    (0, "Great, let's start."),
)


def take(output: Path) -> None:
    ns = enter_netns("regio-shot")
    print(f"network: {ns.reason}", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="regio-shot-") as tmp:
            cluster = start_cluster(Path(tmp) / "cluster")
            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    pages: list[Page] = []
                    for person in PEOPLE:
                        context = browser.new_context(viewport={"width": 1280, "height": 720},
                                                      device_scale_factor=1)
                        page = context.new_page()
                        page.goto(cluster.room_url(ROOM, name=person))
                        pages.append(page)
                    wait_media(pages, timeout=30)
                    for who, text in CHAT:
                        pages[who].fill("#chat-input", text)
                        pages[who].press("#chat-input", "Enter")
                        time.sleep(0.3)
                    wait_until(pages[:1], lambda s: len(s["chatLog"]) == len(CHAT), 10, "chat")
                    time.sleep(1.5)  # a few more frames, so the clocks differ from 0
                    output.parent.mkdir(parents=True, exist_ok=True)
                    pages[0].screenshot(path=str(output))
                    browser.close()
            finally:
                cluster.stop()
    finally:
        leave_netns(ns)
    print(f"wrote {output}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    take(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
