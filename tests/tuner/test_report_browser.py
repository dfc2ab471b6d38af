"""The HTML report in a real browser (the system's Chromium, driven by Playwright): it renders offline, a screenshot
is produced, no text overflows its box or is clipped, no chart label leaves its chart or overlaps another, and every
chart has axes with ticks and a label.

Needs Chromium from the system's packages (`scripts/test.sh` installs Debian's where it runs as root with apt);
without it the test skips and says why. Playwright never downloads a browser here: it is given the system one.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from span_sets import report_traffic

from otel_claude._cli import main as otel_claude

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra has it)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no system Chromium: `apt-get install chromium` (scripts/test.sh does it as root)"
)

# The flags this machine needs: no sandbox as root, and nothing that reaches for the network on its own.
_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"]
_WIDTH = 1280

# Runs in the page: every problem found, as text (an empty list is a clean page).
_CHECK = """() => {
  const problems = [];
  const name = (el) => `${el.tagName.toLowerCase()} "${(el.textContent || '').trim().slice(0, 60)}"`;
  if (document.documentElement.scrollWidth > window.innerWidth)
    problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
  const body = document.body.getBoundingClientRect();
  for (const el of document.querySelectorAll('h1, h2, h3, p, th, td, figcaption, table, figure')) {
    if (el.scrollWidth > el.clientWidth + 1) problems.push(`overflows its box: ${name(el)}`);
    const box = el.getBoundingClientRect();
    if (box.right > body.right + 1) problems.push(`past the page's right edge: ${name(el)}`);
  }
  const charts = [...document.querySelectorAll('figure.chart svg')];
  for (const [index, svg] of charts.entries()) {
    const frame = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim());
    const boxes = texts.map((t) => [t, t.getBoundingClientRect()]);
    for (const [t, r] of boxes) {
      if (r.width === 0) problems.push(`chart ${index}: label without size "${t.textContent}"`);
      if (r.left < frame.left - 1 || r.right > frame.right + 1 || r.top < frame.top - 1 || r.bottom > frame.bottom + 1)
        problems.push(`chart ${index}: label outside its chart "${t.textContent}"`);
    }
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, ra] = boxes[i], [b, rb] = boxes[j];
      const x = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const y = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (x > 1.5 && y > 1.5) problems.push(`chart ${index}: "${a.textContent}" overlaps "${b.textContent}"`);
    }
    const axes = svg.querySelectorAll('g[id*="-matplotlib.axis"]');
    if (axes.length < 2) problems.push(`chart ${index}: ${axes.length} axes`);
    else {
      const xticks = axes[0].querySelectorAll('g[id*="-xtick_"] text').length;
      const yticks = axes[1].querySelectorAll('g[id*="-ytick_"] text').length;
      const xlabel = axes[0].querySelectorAll(':scope > g[id*="-text_"] text').length;
      if (xticks < 2 || yticks < 1 || xlabel < 1)
        problems.push(`chart ${index}: ${xticks} x ticks, ${yticks} y ticks, ${xlabel} x-axis label`);
    }
  }
  return {problems, charts: charts.length};
}"""


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def _distinct_colours(path: Path) -> int:
    from PIL import Image  # matplotlib's own dependency

    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours or [])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    spans = report_traffic(folder / "spans.jsonl")
    page = folder / "report.html"
    assert otel_claude(["tune", str(spans), "-o", str(folder / "policy.yaml"), "--report", str(page),
                        "--no-progress"]) == 0
    return page


def _inspect(page_path: Path, screenshot: Path) -> dict[str, Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=_FLAGS)
        try:
            page = browser.new_page(viewport={"width": _WIDTH, "height": 900})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.as_uri(), wait_until="load")
            found = page.evaluate(_CHECK)
            page.screenshot(path=str(screenshot), full_page=True)
            found["requests"] = requests
            return found
        finally:
            browser.close()


def test_the_report_renders_cleanly_in_a_browser(report: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    found = _inspect(report, screenshot)
    assert found["problems"] == []
    # Cost, reuse and streaming charts, and per task a quality-gap and a length chart (triage has no verdicts but
    # feedback: its gap chart is drawn too).
    assert found["charts"] >= 3 + 3 + 2
    assert found["requests"] == [report.as_uri()]  # self-contained: nothing else is fetched
    width, height = _png_size(screenshot)
    assert width == _WIDTH and height > 3000  # the whole page, not the first screen
    assert _distinct_colours(screenshot) > 50  # drawn, not a blank page


def test_the_checks_catch_a_clipped_label_and_a_chart_without_axes(report: Path, tmp_path: Path) -> None:
    """The page checks above fail on the defects they look for (so a clean result means something)."""
    html = report.read_text()
    broken = html.replace("<body>", '<body><p style="width:40px;overflow:hidden;white-space:nowrap">'
                          "a sentence far wider than its box</p>"
                          '<figure class="chart"><svg width="60" height="20"><text x="0" y="15">a label running past '
                          "its chart</text></svg></figure>", 1)
    page = tmp_path / "broken.html"
    page.write_text(broken)
    problems = _inspect(page, tmp_path / "broken.png")["problems"]
    assert any(p.startswith('overflows its box: p "a sentence') for p in problems)
    assert any("label outside its chart" in p for p in problems)
    assert any(p.endswith(": 0 axes") for p in problems)
