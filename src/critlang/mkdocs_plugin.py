"""The mkdocs plugin: one page per protocol, generated from its .crit file at build time.

In mkdocs.yml (the whole file to copy is in docs/site.md):

    plugins:
      - critlang:
          protocols: ["protocols/*.crit"]

Each protocol `protocols/NAME.crit` becomes the page `protocols/NAME.md` (and,
with `plain: true`, `protocols/NAME-plain.md`), which the nav can list like
any other page, and the printable screening worksheet
`protocols/NAME-worksheet.html` and the live screening form
`protocols/NAME-form.html` beside it, which the page links. A protocol
with errors fails the build with its diagnostics, and so does a mkdocs.yml
without the Markdown extensions or theme the pages are written for: otherwise
the page would show `{ #I1 }`, `!!! note` and the flowchart's source as text
while `mkdocs build --strict` passed.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.livereload import LiveReloadServer
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, Files

from critlang.check import check_source
from critlang.diagnostics import render_all
from critlang.form import render_form
from critlang.pipeline import build
from critlang.render import render_document

log = logging.getLogger("mkdocs.plugins.critlang")

# What the generated pages use, and what each is for (said in the build error).
EXTENSIONS = {
    "attr_list": "the criteria's anchors, as in '### I1 ... { #I1 }'",
    "md_in_html": "the registered text beside the precise reading",
    "admonition": "the author's notes ('!!! note')",
    "tables": "the data dictionary",
    "pymdownx.superfences": "the Mermaid flowchart of the decision logic",
}
THEME = "material"
SETUP = """\
theme:
  name: material
markdown_extensions:
  - admonition
  - attr_list
  - md_in_html
  - tables
  - pymdownx.superfences:
      custom_fences:
        - name: mermaid
          class: mermaid
          format: !!python/name:pymdownx.superfences.fence_code_format"""


def missing_setup(config: MkDocsConfig) -> list[str]:
    """What mkdocs.yml lacks for the protocol pages to render, one line each."""
    enabled = {name.removeprefix("markdown.extensions.") for name in config.markdown_extensions}
    missing = [
        f"markdown_extensions: {name} ({purpose})"
        for name, purpose in EXTENSIONS.items()
        if name not in enabled
    ]
    if "pymdownx.superfences" in enabled:
        fences = config.mdx_configs.get("pymdownx.superfences", {}).get("custom_fences", [])
        if not any(f.get("name") == "mermaid" and f.get("class") == "mermaid" for f in fences):
            missing.append(
                "pymdownx.superfences: a custom fence named 'mermaid' with class 'mermaid' "
                "(without it the flowchart shows as source)"
            )
    theme = config.theme.name
    if theme != THEME:
        missing.append(
            f"theme: {THEME}, not {theme or 'none'} (it draws the Mermaid flowchart and "
            "lays out the registered text beside the reading)"
        )
    return missing


# mkdocs leaves Config.__init_subclass__ unannotated, so subclassing is an untyped call.
class CritlangConfig(base.Config):  # type: ignore[no-untyped-call]
    protocols = c.ListOfItems(c.Type(str), default=["protocols/*.crit"])
    folder = c.Type(str, default="protocols")
    plain = c.Type(bool, default=True)
    worksheet = c.Type(bool, default=True)
    form = c.Type(bool, default=True)


class CritlangPlugin(BasePlugin[CritlangConfig]):  # type: ignore[no-untyped-call]
    """Adds a generated page for every protocol matched by the `protocols` globs."""

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        missing = missing_setup(config)
        if missing:
            lines = "\n".join(f"  - {line}" for line in missing)
            raise PluginError(
                f"critlang: the protocol pages need more in {config.config_file_path}:\n"
                f"{lines}\nThese lines give all of it (see docs/site.md):\n{SETUP}"
            )
        return config

    def sources(self, config: MkDocsConfig) -> list[Path]:
        root = Path(config.config_file_path).parent if config.config_file_path else Path.cwd()
        found: set[Path] = set()
        for pattern in self.config.protocols:
            matches = glob.glob(str(root / pattern), recursive=True)
            if not matches:
                log.warning(f"critlang: no protocol matches '{pattern}'")
            found.update(Path(m) for m in matches)
        return sorted(found)

    def on_files(self, files: Files, /, *, config: MkDocsConfig) -> Files:
        folder = self.config.folder.strip("/")
        for path in self.sources(config):
            text = path.read_text(encoding="utf-8")
            checked, diagnostics = check_source(text, str(path))
            if checked is None:
                raise PluginError(f"critlang: {path} has errors\n{render_all(diagnostics, text)}")
            if diagnostics:
                log.warning(f"critlang: {path}\n{render_all(diagnostics, text)}")
            # the worksheet sits next to the page, so the page links it by its file name
            worksheet = f"{path.stem}-worksheet.html" if self.config.worksheet else None
            form = f"{path.stem}-form.html" if self.config.form else None
            pages = {f"{folder}/{path.stem}.md": render_document(checked, "md", worksheet, form)}
            if self.config.plain:
                pages[f"{folder}/{path.stem}-plain.md"] = render_document(checked, "plain")
            if worksheet is not None:
                pages[f"{folder}/{worksheet}"] = render_document(checked, "html")
            if form is not None:
                pages[f"{folder}/{form}"] = render_form(build(checked))
            for uri, content in pages.items():
                files.append(File.generated(config, uri, content=content))
        return files

    def on_serve(
        self,
        server: LiveReloadServer,
        /,
        *,
        config: MkDocsConfig,
        builder: Callable[..., Any],
    ) -> LiveReloadServer:
        for path in self.sources(config):
            server.watch(str(path))
        return server
