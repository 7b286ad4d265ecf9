"""Writing one benchmark's figures into its own section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) one `## ` section of a Markdown file, leaving the others."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(heading)
    block = f"{heading}\n\n{body.rstrip()}\n\n"
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + block + (text[end + 1 :] if end >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n")
