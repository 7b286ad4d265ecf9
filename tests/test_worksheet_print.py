"""The screening worksheet as printed: headless Chromium prints it to PDF, poppler reads it.

Every page must carry the protocol, its version and 'Page i of n' in the
footer (CSS paged media), and a line for the subject id in the header, so a
loose page in the trial master file still says what it belongs to.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from critlang.check import check_source
from critlang.render import render_document

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def printed(protocol: Path, tmp_path: Path) -> list[str]:
    """The text of each page of the protocol's worksheet printed to PDF."""
    for tool in (CHROMIUM, "pdftotext", "pdfinfo"):
        assert shutil.which(tool), (
            f"{tool} is missing: `make test` installs chromium, poppler-utils"
        )
    checked, diagnostics = check_source(protocol.read_text(encoding="utf-8"), str(protocol))
    assert checked is not None, diagnostics
    html, pdf = tmp_path / "worksheet.html", tmp_path / "worksheet.pdf"
    html.write_text(render_document(checked, "html"), encoding="utf-8")
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--print-to-pdf={pdf}",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    match = re.search(r"^Pages:\s+(\d+)", info.stdout, re.MULTILINE)
    assert match is not None, info.stdout
    return [
        subprocess.run(
            ["pdftotext", "-layout", "-f", str(page), "-l", str(page), str(pdf), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for page in range(1, int(match.group(1)) + 1)
    ]


def test_every_printed_page_names_protocol_version_and_page(tmp_path: Path) -> None:
    pages = printed(ROOT / "protocols" / "ctd_ild.crit", tmp_path)
    assert len(pages) > 1
    for number, text in enumerate(pages, start=1):
        assert "Protocol ctd_ild, version 1.0.0" in text, number
        assert f"Page {number} of {len(pages)}" in text, number
        assert "Subject ID: ______________" in text, number
    first, last = pages[0], pages[-1]
    assert "Subject ID" in first and "Screening number" in first
    assert "Investigator (name)" in last and "Signature" in last
    everything = "\n".join(pages)
    assert "Source" in everything and "Date of" in everything  # headings wrap in their cells
    assert "Steroid dose per kilogram of body weight" in everything
    assert "mg/kg/d" in everything


def test_protocol_text_in_the_footer_is_printed_as_written(tmp_path: Path) -> None:
    pages = printed(ROOT / "tests" / "cases" / "hostile.crit", tmp_path)
    footer = "Protocol hostile, version 1.0 {: onclick=\"alert('pwned-version')\" }"
    assert all(footer in " ".join(text.split()) for text in pages)
    assert "T{{ 7*7 }}T" in pages[0]
