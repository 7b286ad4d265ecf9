"""The mkdocs plugin: one page per protocol, generated from its .crit file at build time.

In mkdocs.yml:

    plugins:
      - critlang:
          protocols: ["protocols/*.crit"]

Each protocol `protocols/NAME.crit` becomes the page `protocols/NAME.md` (and,
with `plain: true`, `protocols/NAME-plain.md`), which the nav can list like
any other page. A protocol with errors fails the build with its diagnostics.
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
from critlang.render import render_document

log = logging.getLogger("mkdocs.plugins.critlang")


# mkdocs leaves Config.__init_subclass__ unannotated, so subclassing is an untyped call.
class CritlangConfig(base.Config):  # type: ignore[no-untyped-call]
    protocols = c.ListOfItems(c.Type(str), default=["protocols/*.crit"])
    folder = c.Type(str, default="protocols")
    plain = c.Type(bool, default=True)


class CritlangPlugin(BasePlugin[CritlangConfig]):  # type: ignore[no-untyped-call]
    """Adds a generated page for every protocol matched by the `protocols` globs."""

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
            pages = {f"{folder}/{path.stem}.md": "md"}
            if self.config.plain:
                pages[f"{folder}/{path.stem}-plain.md"] = "plain"
            for uri, fmt in pages.items():
                files.append(File.generated(config, uri, content=render_document(checked, fmt)))
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
