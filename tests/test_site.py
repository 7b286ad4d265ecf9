"""The documentation site, built with `mkdocs build --strict` and read in headless Chromium.

This runs in CI like every other test: `make test` installs the docs extra and
Debian's chromium. Mermaid is served from the site itself, so the flowchart
renders with no network.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Dialog, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CRITERIA = [f"I{n}" for n in range(1, 6)] + [f"E{n}" for n in range(1, 6)]


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = build(ROOT / "mkdocs.yml", out)
    assert built.returncode == 0, built.stderr
    return out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        yield page
        browser.close()


def mermaid_svg_texts(page: Page) -> list[str] | None:
    """The text in the SVG Mermaid drew, or None if it has not drawn one yet.

    Material draws each diagram into a closed shadow root, out of reach of
    selectors, so this reads the DOM through the DevTools protocol, which does.
    """
    session = page.context.new_cdp_session(page)
    try:
        root = session.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
    finally:
        session.detach()

    def find(node: dict[str, Any], in_mermaid: bool) -> list[str] | None:
        attributes = node.get("attributes", [])
        classes = dict(zip(attributes[::2], attributes[1::2], strict=True)).get("class", "")
        in_mermaid = in_mermaid or "mermaid" in classes.split()
        if in_mermaid and node.get("nodeName", "").lower() == "svg":
            return texts(node)
        for child in [*node.get("children", []), *node.get("shadowRoots", [])]:
            found = find(child, in_mermaid)
            if found is not None:
                return found
        return None

    def texts(node: dict[str, Any]) -> list[str]:
        own = [node["nodeValue"]] if node.get("nodeType") == 3 else []
        return own + [t for child in node.get("children", []) for t in texts(child)]

    return find(root, False)


def test_ctd_ild_page_shows_criteria_and_flowchart(server: str, browser_page: Page) -> None:
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(f"{server}/protocols/ctd_ild/")
    assert response is not None and response.ok
    assert page.locator("h1").inner_text().startswith("ADSCs Therapy in Patients With CTD-ILD")
    for ident in CRITERIA:
        heading = page.locator(f"h3[id='{ident}']")
        assert heading.is_visible(), ident
        assert heading.inner_text().startswith(f"{ident} ")
    reading = page.locator("h3[id='I1'] ~ div.grid").first.inner_text()
    assert "Age between 20 and 80 years, inclusive" in reading

    deadline = time.monotonic() + 30
    svg_text = mermaid_svg_texts(page)
    while svg_text is None and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        svg_text = mermaid_svg_texts(page)
    assert svg_text is not None, "Mermaid drew no <svg> for the decision logic"
    drawn = " ".join(svg_text)
    for label in ("Screening record", "I1 Adult with a connective tissue disease", "Eligible"):
        assert label in drawn
    assert "a. Refractory or progressive fibrotic ILD" in drawn
    assert "E5 Immune deficiency or notifiable infection" in drawn

    outside = [url for url in requested if not url.startswith(server)]
    assert outside == [], "the page must render offline"


def test_plain_language_page(server: str, browser_page: Page) -> None:
    page = browser_page
    page.goto(f"{server}/protocols/ctd_ild-plain/")
    text = page.locator("article").inner_text()
    assert "You cannot take part if" in text
    assert "You do not want to sign the consent form." in text


def test_crit_code_blocks_are_highlighted(site: Path) -> None:
    home = (site / "index.html").read_text(encoding="utf-8")
    assert '<span class="kd">inclusion</span>' in home


def test_a_protocol_with_errors_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n", encoding="utf-8")
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "bad.crit").write_text(
        'protocol bad\ninclusion I1 "t" met when agee > 1\n', encoding="utf-8"
    )
    config = tmp_path / "mkdocs.yml"
    config.write_text(documented_mkdocs_yml(), encoding="utf-8")
    built = build(config, tmp_path / "site")
    assert built.returncode != 0
    assert "unknown name 'agee'" in built.stderr


# ---- a protocol written to attack the site (tests/cases/hostile.crit) -------------------

HOSTILE = (Path(__file__).parent / "cases" / "hostile.crit").read_text(encoding="utf-8")


def documented_mkdocs_yml() -> str:
    """The complete mkdocs.yml that docs/site.md tells authors to copy."""
    text = (ROOT / "docs" / "site.md").read_text(encoding="utf-8")
    start = text.index("```yaml\nsite_name:") + len("```yaml\n")
    return text[start : text.index("```", start)]


def dom_nodes(page: Page) -> list[dict[str, Any]]:
    """Every element of the page, shadow roots (Mermaid's) and frames included."""
    session = page.context.new_cdp_session(page)
    try:
        root = session.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
    finally:
        session.detach()
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("nodeType") == 1:
            found.append(node)
        for key in ("children", "shadowRoots"):
            for child in node.get(key, []):
                walk(child)
        if "contentDocument" in node:
            walk(node["contentDocument"])

    walk(root)
    return found


def text_of(node: dict[str, Any]) -> str:
    own = node.get("nodeValue", "") if node.get("nodeType") == 3 else ""
    return own + "".join(text_of(child) for child in node.get("children", []))


def live_markup(page: Page) -> list[str]:
    """Scripts, event handlers and javascript: URLs in the DOM that came from the protocol."""
    found = []
    for node in dom_nodes(page):
        attributes = node.get("attributes", [])
        name = node.get("nodeName", "").lower()
        for attribute, value in zip(attributes[::2], attributes[1::2], strict=True):
            squeezed = "".join(value.split()).lower()
            scheme = any(s in squeezed for s in ("javascript:", "vbscript:", "data:text/html"))
            if attribute.lower().startswith("on") or scheme:
                found.append(f"<{name} {attribute}={value!r}>")
        if name == "script" and "pwned" in text_of(node):
            found.append(f"<script>{text_of(node)[:80]}</script>")
    return found


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    (root / "docs" / "javascripts").mkdir(parents=True)
    (root / "docs" / "index.md").write_text("# Home\n", encoding="utf-8")
    mermaid = ROOT / "docs" / "javascripts" / "mermaid.min.js"
    (root / "docs" / "javascripts" / "mermaid.min.js").write_bytes(mermaid.read_bytes())
    (root / "protocols").mkdir()
    (root / "protocols" / "hostile.crit").write_text(HOSTILE, encoding="utf-8")
    offline = "\ntheme:\n  name: material\n  font: false\n"
    config = documented_mkdocs_yml().replace("\ntheme:\n  name: material\n", offline)
    config += "extra_javascript:\n  - javascripts/mermaid.min.js\n"
    (root / "mkdocs.yml").write_text(config, encoding="utf-8")
    built = build(root / "mkdocs.yml", root / "site")
    assert built.returncode == 0, built.stderr
    return root / "site"


@pytest.mark.parametrize(
    "path", ["protocols/hostile/", "protocols/hostile-plain/", "protocols/hostile-worksheet.html"]
)
def test_protocol_text_is_never_live_markup(
    hostile_site: Path, browser_page: Page, path: str
) -> None:
    handler = functools.partial(_QuietHandler, directory=str(hostile_site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page = browser_page
    page.on("dialog", on_dialog)
    try:
        response = page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/{path}")
        assert response is not None and response.ok
        if path == "protocols/hostile/":
            deadline = time.monotonic() + 30
            while mermaid_svg_texts(page) is None and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            drawn = " ".join(mermaid_svg_texts(page) or [])
            assert "#lt;img src=x onerror=alert('pwned-mermaid')#gt;" in drawn
            assert "[x](javascript:alert('pwned-flow'))" in drawn
        assert live_markup(page) == []
        assert dialogs == []
        shown = page.locator("body").inner_text()
        assert "T{{ 7*7 }}T" in shown and "T49T" not in shown
        if path != "protocols/hostile-plain/":
            assert "{: onclick=\"alert('pwned-registered')\" }" in shown
        else:
            assert "{: onclick=\"alert('pwned-plain')\" }" in shown
    finally:
        page.remove_listener("dialog", on_dialog)
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("  - attr_list\n", "markdown_extensions: attr_list"),
        ("  - admonition\n", "markdown_extensions: admonition"),
        ("          class: mermaid\n", "a custom fence named 'mermaid' with class 'mermaid'"),
        ("theme:\n  name: material\n", "theme: material, not mkdocs"),
    ],
)
def test_a_setup_the_pages_cannot_render_in_fails_the_build(
    tmp_path: Path, drop: str, named: str
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n", encoding="utf-8")
    (tmp_path / "protocols").mkdir()
    crit = (ROOT / "protocols" / "ctd_ild.crit").read_text(encoding="utf-8")
    (tmp_path / "protocols" / "ctd_ild.crit").write_text(crit, encoding="utf-8")
    config = documented_mkdocs_yml()
    assert drop in config
    (tmp_path / "mkdocs.yml").write_text(config.replace(drop, "", 1), encoding="utf-8")
    built = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "critlang: the protocol pages need more in" in built.stderr
    assert named in built.stderr
    assert "Traceback" not in built.stderr


def test_the_documented_mkdocs_yml_builds_and_links_the_worksheet_and_form(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n", encoding="utf-8")
    (tmp_path / "protocols").mkdir()
    crit = (ROOT / "protocols" / "ctd_ild.crit").read_text(encoding="utf-8")
    (tmp_path / "protocols" / "ctd_ild.crit").write_text(crit, encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(documented_mkdocs_yml(), encoding="utf-8")
    built = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stderr
    page = (tmp_path / "site" / "protocols" / "ctd_ild" / "index.html").read_text("utf-8")
    assert 'href="../ctd_ild-worksheet.html"' in page
    worksheet = tmp_path / "site" / "protocols" / "ctd_ild-worksheet.html"
    assert "Screening worksheet" in worksheet.read_text("utf-8")
    assert "{ #I1 }" not in page and "!!! note" not in page
    assert '<pre class="mermaid"><code>flowchart TD' in page
    assert 'href="../ctd_ild-form.html"' in page
    form = tmp_path / "site" / "protocols" / "ctd_ild-form.html"
    assert "critlangProtocol" in form.read_text("utf-8")
