"""What a reader sees of the built site, measured in headless Chromium at a desktop and a phone width.

Used by tests/test_book.py (on the book it builds with small parameters) and runnable on any built site:

    .venv/bin/python tests/browser_check.py _build/html [SCREENSHOT_DIR]

prints every problem of every page at 1280 and 390 px (exit 1 if any) and writes screenshots of the first
screen of each page plus chapter 1's Figure 1.

A figure's effective font size is the size of its smallest text in the PNG (recorded by qid.chapters.plots
under the PNG text key `qid-min-font-px`) times its displayed width over its natural width.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

WIDTHS = (1280, 390)  # desktop and phone, CSS px
DESKTOP_WIDTH = 1000  # px: from here up every table must fit the text column
MIN_FIGURE_WIDTH_PX = 600  # a chapter figure drawn narrower than this is unreadable at page width
MIN_EFFECTIVE_FONT_PX = 9.0  # smallest text of a figure as displayed
MIN_FONT_KEY = "qid-min-font-px"  # qid.chapters.plots.MIN_FONT_KEY (tests do not import the chapters' plotting)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--hide-scrollbars"]
# Text that means an object's repr or a Python error leaked into a page instead of its content.
LEAKED_OUTPUT = ("<matplotlib.", "Text(", "<Figure size", "<pandas.io.formats", "<IPython.core.display",
                 " object at 0x", "Traceback (most recent call last)", "Warning:")
# Raw output a reader should never see in a cell's output.
RAW_OUTPUT = {
    "a number with 12 or more digits": re.compile(r"\d{12,}"),
    "an absolute path": re.compile(r"(?:^|[\s'\"(\[=`])(/(?:[\w.-]+/){2,}[\w.-]*)"),
    "a progress bar": re.compile(r"\d+%\||[█▉▊▋▌▍▎▏]{2,}|\d(?:it/s|s/it)\b"),
}

# Injected into a copy of each page: once the page (and MathJax) has settled, measure what a reader sees and
# write it as JSON into the DOM, which headless Chromium then dumps.
MEASURE_SCRIPT = r"""
<script>
window.addEventListener("load", () => setTimeout(() => {
  const visible = (el) => el.offsetParent !== null && !el.closest("details:not([open])");
  const content = document.querySelector("article.bd-article") || document.querySelector("main");
  const outputs = [...document.querySelectorAll(".cell_output, .output")];
  const clipped = (el) => {  // inside a box that scrolls or clips: it cannot widen the page
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(up).overflowX)) return true;
    }
    return false;
  };
  const contentRight = content ? content.getBoundingClientRect().right : window.innerWidth;
  const result = {
    viewport_width: window.innerWidth,
    page_width: document.documentElement.scrollWidth,
    content_width: content ? content.clientWidth : null,
    content_scroll_width: content ? content.scrollWidth : null,
    tables: [...document.querySelectorAll("table")].filter(visible).map((t) => ({
      width: Math.round(t.getBoundingClientRect().width),
      head: (t.innerText || "").slice(0, 60)})),
    wide_math: [...document.querySelectorAll("mjx-container[display='true'], mjx-container[display]")]
      .filter(visible).filter((m) => m.getBoundingClientRect().right > contentRight + 2)
      .map((m) => ({width: Math.round(m.getBoundingClientRect().width), text: (m.textContent || "").slice(0, 40)})),
    figures: [...document.querySelectorAll("img")].filter((img) => /\.png$/.test(img.getAttribute("src") || ""))
      .filter(visible).map((img) => {
        const box = img.getBoundingClientRect();
        return {src: img.getAttribute("src"), url: img.src, natural: img.naturalWidth,
                displayed: Math.round(box.width * 10) / 10, top: Math.round(box.top + window.scrollY),
                bottom: Math.round(box.bottom + window.scrollY), left: Math.round(box.left),
                right: Math.round(box.right)};
      }),
    // what sticks out of the window on the right: the innermost such elements, for the message
    overflowing: [...document.body.querySelectorAll("*")].filter((el) => el.getBoundingClientRect().right >
        window.innerWidth + 1 && visible(el) && !clipped(el) && ![...el.children].some((child) =>
        child.getBoundingClientRect().right > window.innerWidth + 1)).slice(0, 3).map((el) =>
        `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} "${(el.textContent || "").trim().slice(0, 50)}"`),
    output_text: outputs.map((o) => o.innerText).join(" | "),
    body_text: document.body.innerText,
    math_typeset: document.querySelectorAll("mjx-container").length,
    math_present: document.querySelectorAll(".math").length,
  };
  const pre = document.createElement("pre");
  pre.id = "qid-measure";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
  if (window.parent !== window) window.parent.postMessage(pre.textContent, "*");  // framed at a phone's width
}, 3000));
</script>
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Headless Chromium will not make a window narrower than 500 px; a phone's 390 px viewport is an iframe that wide
# in a host page beside the page (so its resources resolve), and the measurement comes back by postMessage.
MIN_WINDOW_WIDTH = 500
HOST_PAGE = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:{height}px;border:0;display:block"></iframe>
<script>window.addEventListener("message", (event) => {{
  const pre = document.createElement("pre"); pre.id = "qid-measure"; pre.textContent = event.data;
  document.body.appendChild(pre); }});</script></body></html>"""


def viewed(page: Path, width: int, height: int, source: Path | None = None):
    """(file to load, window width, files to remove): the page itself, or a host page framing it `width` px wide."""
    source = source or page
    if width >= MIN_WINDOW_WIDTH:
        return source, width, []
    host = page.with_name(f"{page.stem}.host{width}.html")
    host.write_text(HOST_PAGE.format(src=source.name, width=width, height=height))
    return host, MIN_WINDOW_WIDTH, [host]


def measured_page(page: Path, user_data_dir: Path, width: int = 1280) -> dict:
    """Load a copy of the page (beside it, so its resources resolve) with the measuring script; its JSON."""
    probe = page.with_name(page.stem + ".measure.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE_SCRIPT + "</body>"))
    target, window, extra = viewed(page, width, 900, probe)
    try:
        command = [chromium(), *CHROMIUM_FLAGS, f"--window-size={window},900", f"--user-data-dir={user_data_dir}",
                   "--virtual-time-budget=15000", "--dump-dom", target.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)  # a hang guard that holds at load 8
    finally:
        for path in [probe, *extra]:
            path.unlink()
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed on {page.name}: {result.stderr[-2000:]}")
    found = re.search(r'<pre id="qid-measure">(.*?)</pre>', result.stdout, flags=re.S)
    if not found:
        raise RuntimeError(f"{page.name}: the measuring script did not run")
    measured = json.loads(html.unescape(found.group(1)))
    for figure in measured["figures"]:
        figure["min_font_px"] = recorded_font_px(figure["url"], page)
    return measured


def recorded_font_px(url: str, page: Path) -> float | None:
    """The smallest font of a figure in pixels of its PNG, as recorded by qid.chapters.plots; None if absent."""
    from PIL import Image

    parsed = urlparse(url)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else (page.parent / url)
    try:
        with Image.open(path) as image:
            value = getattr(image, "text", {}).get(MIN_FONT_KEY)
    except OSError:
        return None
    return float(value) if value else None


def screenshot(page: Path, target: Path, user_data_dir: Path, width: int = 1280, height: int = 900) -> None:
    """The page as a `width` × `height` px window shows it (narrower than Chromium allows: framed, then cropped)."""
    from PIL import Image

    shown, window, extra = viewed(page, width, height)
    command = [chromium(), *CHROMIUM_FLAGS, f"--window-size={window},{height}", f"--user-data-dir={user_data_dir}",
               "--virtual-time-budget=15000", f"--screenshot={target}", shown.as_uri()]
    try:
        subprocess.run(command, capture_output=True, text=True, timeout=1800)  # a hang guard that holds at load 8
    finally:
        for path in extra:
            path.unlink()
    if window != width and target.exists():
        with Image.open(target) as image:
            image.crop((0, 0, width, image.height)).save(target)


def figure_screenshot(page: Path, figure: dict, target: Path, user_data_dir: Path, width: int = 1280) -> None:
    """A screenshot of one figure as displayed (the page shot tall enough to hold it, then cropped)."""
    from PIL import Image

    screenshot(page, target, user_data_dir, width=width, height=figure["bottom"] + 40)
    with Image.open(target) as image:
        box = (0, max(figure["top"] - 40, 0), image.width, min(figure["bottom"] + 40, image.height))
        image.crop(box).save(target)


def page_problems(name: str, measured: dict, expects_figure: bool) -> list[str]:
    """Everything a reader should not see on a page, as messages (empty: the page is clean)."""
    problems = []
    text, outputs = measured["body_text"], measured["output_text"]
    if "Traceback (most recent call last)" in text:
        problems.append(f"{name} shows a traceback")
    if "$$" in text or "\\(" in text:
        problems.append(f"{name} shows raw TeX: MathJax did not typeset it")
    if measured["math_present"] and not measured["math_typeset"]:
        problems.append(f"{name}: math present but not typeset by MathJax")
    problems += [f"{name}: an output shows {marker!r}" for marker in LEAKED_OUTPUT if marker in outputs]
    for what, pattern in RAW_OUTPUT.items():
        found = pattern.search(outputs)
        if found:
            context = outputs[max(found.start() - 30, 0): found.end() + 30].replace("\n", " ")
            problems.append(f"{name}: an output holds {what}: …{context}…")
    if expects_figure and not measured["figures"]:
        problems.append(f"{name} has no figure")
    for figure in measured["figures"]:
        src = figure["src"].rsplit("/", 1)[-1]
        if figure["natural"] < MIN_FIGURE_WIDTH_PX:
            problems.append(f"{name}: figure {src} is {figure['natural']} px wide (< {MIN_FIGURE_WIDTH_PX})")
        if figure.get("min_font_px") is None:
            problems.append(f"{name}: figure {src} has no font record (draw it with qid.chapters.plots)")
        elif figure["natural"]:
            effective = figure["min_font_px"] * figure["displayed"] / figure["natural"]
            if effective < MIN_EFFECTIVE_FONT_PX:
                problems.append(f"{name}: figure {src} shows its smallest text at {effective:.1f} px "
                                f"(< {MIN_EFFECTIVE_FONT_PX:g}: {figure['min_font_px']:.1f} px drawn, "
                                f"{figure['natural']} px wide shown at {figure['displayed']:.0f} px)")
    width = measured["content_width"]
    # On a desktop every table fits the column; on a phone a wide table may scroll inside its own box (the page
    # must not: checked below).
    if (measured.get("viewport_width") or DESKTOP_WIDTH) >= DESKTOP_WIDTH:
        problems += [f"{name}: table {table['head']!r} is {table['width']} px wide, the content area {width} px"
                     for table in measured["tables"] if width and table["width"] > width + 2]
    problems += [f"{name}: a display equation is {math['width']} px wide, past the content area ({width} px): "
                 f"{math['text']!r}" for math in measured.get("wide_math", [])]
    viewport, page_width = measured.get("viewport_width"), measured.get("page_width")
    if viewport and page_width and page_width > viewport + 1:
        culprits = "; ".join(measured.get("overflowing") or [])
        problems.append(f"{name}: the page scrolls sideways ({page_width} px of content in a {viewport} px window)"
                        + (f": {culprits}" if culprits else ""))
    return problems


def site_pages(site: Path, chapters: list[str]) -> list[Path]:
    return [site / "book" / "intro.html"] + [site / "chapters" / f"{name}.html" for name in chapters] + [
        page for page in sorted((site / "book").glob("*.html"))
        if page.name not in ("intro.html", "genindex.html") and ".measure" not in page.name and ".host" not in page.name]


def check_site(site: Path, chapters: list[str], screenshots: Path, user_data_dir: Path, log=None) -> list[str]:
    """Every problem of every page at every width in WIDTHS; screenshots of first screens and chapter 1's Figure 1."""
    screenshots.mkdir(parents=True, exist_ok=True)
    problems = []
    for page in site_pages(site, chapters):
        expects_figure = page.parent.name == "chapters" or page.name == "intro.html"
        for width in WIDTHS:
            measured = measured_page(page, user_data_dir, width)
            found = page_problems(f"{page.parent.name}/{page.name} at {width} px", measured, expects_figure)
            if log:
                log("\n".join(found) or f"{page.parent.name}/{page.name} at {width} px: clean")
            problems += found
            screenshot(page, screenshots / f"{page.stem}_{width}.png", user_data_dir, width=width)
            if page.stem.startswith("01_") and measured["figures"]:
                first = measured["figures"][0]
                figure_screenshot(page, first, screenshots / f"{page.stem}_figure1_{width}.png", user_data_dir, width)
    return problems


def main(argv: list[str]) -> int:
    site = (Path(argv[0]) if argv else Path("_build/html")).resolve()
    screenshots = Path(argv[1]) if len(argv) > 1 else site.parent / "screenshots"
    chapters = sorted(page.stem for page in (site / "chapters").glob("[0-9][0-9]_*.html"))
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        problems = check_site(site, chapters, screenshots, Path(profile), log=lambda text: print(text, flush=True))
    print(f"{len(problems)} problems" if problems else "no problems")
    print(f"screenshots in {screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
