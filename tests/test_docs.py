"The documentation site (make docs) as a reader sees it: headless Chromium finds the IMR unmasking trace on the IMR page."
import base64
from pathlib import Path

import pytest

from chatbert.app.browser import CHROMEDRIVER, CHROMIUM, docs_check

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "_docs"
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                     "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a3f6d2c70000000049454e44ae426082")).decode()

needs_chromium = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                    reason="headless Chromium is missing: make browser-deps (Debian's chromium and chromium-driver)")


@needs_chromium
@pytest.mark.skipif(not (SITE / "models.imr.chat.html").is_file(), reason="the docs site is not built: make docs")
def test_the_built_site_shows_the_imr_unmasking_trace_and_the_api():
    seen = docs_check(SITE)
    assert seen["found"], seen
    assert seen["figure"]["width"] > 300 and "unmasking trace" in seen["figure"]["alt"].lower(), seen["figure"]
    assert "IMRChat.generate" in seen["api"] and "IMRChat.likelihood" in seen["api"], seen["api"]   # show_doc's headings
    home = docs_check(SITE, page="index.html", figure="no such figure")
    assert not home["found"] and home["title"].startswith("ChatBERT"), home


def site(folder, alt, caption="", src=f"data:image/png;base64,{PNG}"):
    "A one-page site: a figure with this alt text, caption and image."
    folder.mkdir()
    (folder / "p.html").write_text(f'<html><head><title>p</title></head><body><h3>f</h3><figure><img src="{src}" '
                                   f'alt="{alt}"><figcaption>{caption}</figcaption></figure></body></html>')
    return folder


@needs_chromium
def test_docs_check_finds_a_figure_by_alt_text_or_caption_and_only_when_it_loads(tmp_path):
    assert docs_check(site(tmp_path / "alt", "IMR Unmasking Trace"), "p.html")["found"]
    by_caption = docs_check(site(tmp_path / "caption", "a heatmap", "The unmasking trace"), "p.html")
    assert by_caption["found"] and by_caption["figure"]["caption"] == "The unmasking trace" and by_caption["api"] == ["f"]
    other = docs_check(site(tmp_path / "other", "learning curves"), "p.html")
    assert not other["found"] and other["images"] == 1
    broken = docs_check(site(tmp_path / "broken", "unmasking trace", src="missing.png"), "p.html")
    assert not broken["found"] and broken["figure"]["width"] == 0                    # named, but the image never loads
