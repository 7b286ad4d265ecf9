"""Standalone HTML pages (attrition report, match, diff, live form): one template setup.

Every page is autoescaped, so whatever a protocol or record says is shown as
text; layout lives in `templates/`, words in the modules that call `page`.
Imported only by the commands that write a page: screening loads no Jinja.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("critlang", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def page(template: str, **context: Any) -> str:
    """`templates/<template>` rendered with `context`, every value escaped."""
    return _environment().get_template(template).render(**context)
