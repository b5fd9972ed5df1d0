"""The README's screenshots of the app, taken in a real browser as a person sees it: the
Translate tab after upscaling the example photo (desktop and phone), and the Checkpoints tab.

    .venv/bin/python scripts/screenshots.py        # writes docs/images/app-*.webp

Needs the test extras (playwright) and Debian's chromium, as the browser tests do.
"""

import io
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.helpers import EXAMPLE, launch  # noqa: E402
from translator.app import Studio, build_app  # noqa: E402
from translator.app.workspace import Workspace  # noqa: E402

OUT = ROOT / "docs" / "images"


def shot(page, name: str) -> None:
    """The page as it is, as WebP: a tenth of a PNG's size, and the photo in it looks the same."""
    Image.open(io.BytesIO(page.screenshot(animations="disabled"))).save(OUT / name, "WEBP", quality=88, method=6)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        demo = build_app(Studio(Workspace(Path(home) / "workspace"), device="cpu"))
        launch(demo)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                for name, viewport in (("app-translate.webp", {"width": 1280, "height": 860}), ("app-phone.webp", {"width": 390, "height": 844})):
                    page = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500).new_page()
                    page.set_default_timeout(60_000)
                    page.goto(demo.local_url)
                    page.locator("input[type=file]").first.set_input_files(str(EXAMPLE))
                    page.get_by_role("button", name="Upscale x4", exact=True).click()
                    # "compact-sr-x4, 1.2 s" or "compact-sr-x4 in bf16, ...", as this CPU has it
                    expect(page.get_by_text(re.compile(r"^compact-sr-x4( in [\w ()]+)?, "))).to_be_visible(timeout=60_000)
                    page.wait_for_timeout(800)  # the preview decodes and the page settles
                    shot(page, name)
                    if name == "app-translate.webp":
                        page.get_by_role("tab", name="Checkpoints", exact=True).click()
                        page.get_by_role("grid", name="Checkpoints", exact=True).get_by_text("compact-sr-x4-clean", exact=True).click()
                        page.wait_for_timeout(500)
                        shot(page, "app-checkpoints.webp")
                    page.context.close()
                browser.close()
        finally:
            demo.close()
    for path in sorted(OUT.glob("app-*.webp")):
        print(path.relative_to(ROOT), f"{path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
