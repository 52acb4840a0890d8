"""Screenshot the explorer's group view of a run (how docs/explorer-group-smollm2.png is made).

Usage: .venv/bin/python scripts/explorer_screenshot.py RUN_DIR STEP GROUP OUT.png
Needs Debian's chromium (scripts/setup_test_extras.sh) and playwright (the `test` extra).
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

from grpokit.explorer import server as srv

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(run_dir: str, step: int, group: int, out: str) -> int:
    s = srv.make_server([run_dir], port=0)
    srv.serve_in_thread(s)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = b.new_page(viewport={"width": 1280, "height": 900})
            page.emulate_media(reduced_motion="reduce")
            page.goto(f"http://127.0.0.1:{s.server_address[1]}/#/run/0/step/{step}/group/{group}")
            page.wait_for_selector("#group-view .adv-label")
            page.mouse.move(1, 1)
            page.screenshot(path=out, full_page=True)
            b.close()
    finally:
        s.shutdown()
        s.server_close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
