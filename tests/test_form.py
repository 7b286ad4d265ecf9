"""The live screening form in headless Chromium: its answers are the Python engine's.

The form runs the JavaScript engine in the page. On a thousand random records
per protocol its values equal the Python engine's; a coordinator filling the
example patients through the form's own controls (found by their labels) gets
the Python answers; the record it saves is read by `critlang eval` to the same
result; every control has a label and is reached with the keyboard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import Page, sync_playwright

import critlang
from critlang.cli import main
from critlang.form import render_form
from critlang.protocol_tests import example_record
from tests.jsengine import random_records, run_python
from tests.test_site import CHROMIUM, CHROMIUM_ARGS

PROTOCOLS = sorted(Path("protocols").glob("*.crit"))

# Values as the page's engine takes them, then every criterion's and part's word.
_IN_PAGE = """
(records) => records.map((record) => {
  const R = window.critlangForm.runtime;
  const P = critlangProtocol;
  const env = {};
  for (const [name, value] of Object.entries(record)) {
    if (value === null) env[name] = null;
    else if (value.number !== undefined) env[name] = R.parse(value.number);
    else if (value.set !== undefined) env[name] = new Set(value.set);
    else env[name] = value;
  }
  const result = window.critlangForm.evaluate(env);
  const word = (value, applies) => {
    if (applies !== null && result.trace[applies] === false) return "not applicable";
    const v = result.trace[value];
    return v === null ? "unknown" : v ? "true" : "false";
  };
  const criteria = {};
  for (const c of P.protocol.criteria) {
    criteria[c.id] = word(c.value, c.applies);
    for (const p of c.parts) criteria[c.id + "." + p.name] = word(p.value, p.applies);
  }
  return { status: result.status, criteria, missing: result.missing.slice().sort() };
})
"""


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        browser.close()
        assert errors == []


def open_form(page: Page, protocol: critlang.Protocol, tmp_path: Path) -> None:
    path = tmp_path / f"{protocol.name}-form.html"
    path.write_text(render_form(protocol), encoding="utf-8")
    page.goto(path.as_uri())


def in_page_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal | int):
        return {"number": format(Decimal(value), "f")}
    if isinstance(value, frozenset | list):
        return {"set": sorted(value)}
    return value if isinstance(value, str) else value.isoformat()


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_the_form_agrees_with_python_on_a_thousand_records(
    path: Path, page: Page, tmp_path: Path
) -> None:
    protocol = critlang.load(path)
    open_form(page, protocol, tmp_path)
    records = random_records(protocol, 1000, seed=1129)
    envs = [{k: in_page_value(v) for k, v in protocol.intake(r, 1)[1].items()} for r in records]
    assert page.evaluate(_IN_PAGE, envs) == run_python(protocol, records)


def fill(page: Page, protocol: critlang.Protocol, record: dict[str, Any]) -> None:
    """Answer the form's questions as a coordinator would, through the labelled controls."""
    env = protocol.intake(record, 1)[1]
    page.fill("#field-id", str(record.get("id", "")))
    for element in protocol.checked.protocol.elements:
        name = element.name.text
        value = env.get(name)
        control = page.locator(f'[data-field="{name}"]')
        if control.locator("select").count():
            words = {True: "yes", False: "no", None: ""}
            choice = words[value] if isinstance(value, bool) or value is None else value
            control.locator("select").select_option(choice)
        elif control.locator('input[type="checkbox"]').count():
            for box in control.locator('input[type="checkbox"]').all():
                wanted = value is not None and (
                    box.get_attribute("value") in value
                    or (box.get_attribute("data-none") is not None and not value)
                )
                box.set_checked(wanted)
        else:
            text = (
                ""
                if value is None
                else (format(value, "f") if isinstance(value, Decimal) else str(value))
            )
            control.locator("input").fill(text)


def test_a_coordinator_fills_the_example_patients(page: Page, tmp_path: Path) -> None:
    protocol = critlang.load("protocols/ctd_ild.crit")
    open_form(page, protocol, tmp_path)
    for example in protocol.checked.protocol.examples:
        record = example_record(example)
        fill(page, protocol, record)
        expected = protocol.evaluate(record)
        assert page.text_content("#status") == expected.status, example.title
        for criterion in expected.criteria:
            cell = page.text_content(f'tr[data-criterion="{criterion.id}"] td.value')
            assert cell == criterion.value_word, (example.title, criterion.id)
        missing = page.locator("#missing li").all_text_contents()
        assert len(missing) == len(expected.missing)
        # The record the form saves is read by critlang eval to the same answer.
        saved = tmp_path / "saved.json"
        saved.write_text(page.input_value("#record-json"), encoding="utf-8")
        run = CliRunner().invoke(
            main, ["eval", "protocols/ctd_ild.crit", str(saved), "--format", "json"]
        )
        (result,) = json.loads(run.stdout)
        assert result["status"] == expected.status, example.title


def test_a_value_outside_its_plausible_range_is_shown_not_used(page: Page, tmp_path: Path) -> None:
    protocol = critlang.load("protocols/ctd_ild.crit")
    open_form(page, protocol, tmp_path)
    page.fill("#field-age", "300")
    assert "outside the plausible range" in page.text_content("#problem-age")
    assert page.get_attribute("#field-age", "aria-invalid") == "true"
    assert page.text_content("#status") == "check the highlighted answers"
    page.fill("#field-age", "45")
    assert page.text_content("#problem-age") == ""


def test_every_control_is_labelled_and_reached_with_the_keyboard(
    page: Page, tmp_path: Path
) -> None:
    protocol = critlang.load("protocols/ctd_ild.crit")
    open_form(page, protocol, tmp_path)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button")]
              .filter((c) => !(c.labels && c.labels.length) && !c.closest("label")
                             && !(c.tagName === "BUTTON" && c.textContent.trim()))
              .map((c) => c.id || c.name)"""
    )
    assert unlabelled == []
    controls = page.evaluate(
        """() => [...document.querySelectorAll("input, select, button")]
              .filter((c) => !c.disabled).length"""
    )
    page.focus("#field-id")
    reached = set()
    for _ in range(controls + 5):
        reached.add(
            page.evaluate(
                "() => document.activeElement.id || document.activeElement.name + '=' + document.activeElement.value"
            )
        )
        page.keyboard.press("Tab")
    assert len(reached) >= controls
