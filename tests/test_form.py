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
from critlang.form import fields, render_form
from critlang.protocol_tests import example_record
from critlang.vocab import ENTRY_LAYOUT, EntryKind
from tests.jsengine import ENV_OF, _js_history, random_records, run_python
from tests.test_site import CHROMIUM, CHROMIUM_ARGS

PROTOCOLS = sorted(Path("protocols").glob("*.crit"))

# Values as the page's engine takes them, then every criterion's and part's word.
_IN_PAGE = (
    """
(records) => {
"""
    + ENV_OF
    + """
return records.map((record) => {
  const R = window.critlangForm.runtime;
  const P = critlangProtocol;
  const result = window.critlangForm.evaluate(envOf(record, R.parse));
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
});
}
"""
)


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


def in_page_env(protocol: critlang.Protocol, record: dict[str, Any]) -> dict[str, Any]:
    """A record after intake (values in declared units), as the page's engine takes it."""
    kinds = protocol.checked.element_types
    return {
        name: _js_history(kinds[name].entry, value)
        if name in kinds and kinds[name].kind == "history" and value is not None
        else in_page_value(value)
        for name, value in protocol.intake(record, 1)[1].items()
    }


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_the_form_agrees_with_python_on_a_thousand_records(
    path: Path, page: Page, tmp_path: Path
) -> None:
    protocol = critlang.load(path)
    open_form(page, protocol, tmp_path)
    records = random_records(protocol, 1000, seed=1129)
    envs = [in_page_env(protocol, r) for r in records]
    assert page.evaluate(_IN_PAGE, envs) == run_python(protocol, records)


def fill(page: Page, protocol: critlang.Protocol, record: dict[str, Any]) -> None:
    """Answer the form's questions as a coordinator would, through the labelled controls:
    histories entry by entry with the Add and Remove buttons."""
    env = protocol.intake(record, 1)[1]
    controls = {f.name: f.control for f in fields(protocol)}
    page.fill("#field-id", str(record.get("id", "")))
    for element in protocol.checked.protocol.elements:
        name = element.name.text
        value = env.get(name)
        control = page.locator(f'[data-field="{name}"]')
        if controls[name] == "history":
            fill_history(page, name, element.type, value)
        elif controls[name] == "code":
            system, _, code = (value or ":").partition(":")
            if system:
                control.locator("select").select_option(system)
            control.locator(f"#field-{name}").fill(code)
        elif controls[name] == "date":
            # As the record gives it: a partial date stays partial.
            control.locator("input").fill("" if value is None else str(record[name]))
        elif control.locator("select").count():
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


def fill_history(page: Page, name: str, kind: Any, entries: Any) -> None:
    """Remove the entries shown, then add the record's (in the history's unit, after intake)."""
    field = page.locator(f'[data-field="{name}"]')
    while field.locator("button[data-remove]").count():
        field.locator("button[data-remove]").first.click()
    if entries is None:
        field.locator(f"#field-{name}").select_option("")
        return
    field.locator(f"#field-{name}").select_option("listed")
    layout = ENTRY_LAYOUT[EntryKind(kind.entry)]
    for entry in entries:
        field.get_by_role("button", name="Add an entry").click()
        row = field.locator(".entry").last
        for key, item in zip(layout, entry, strict=True):
            if item is None or key == "source":
                continue
            if key == "code":
                system, _, code = item.partition(":")
                row.get_by_label("System").select_option(system)
                row.get_by_label("Code").fill(code)
            else:
                text = format(item, "f") if isinstance(item, Decimal) else str(item)
                row.locator(f'[data-part="{key}"]').fill(text)


def shown(page: Page) -> dict[str, Any]:
    """The status, every criterion's and part's value, and the number of missing items."""
    cells = page.locator("tr[data-criterion]").all()
    return {
        "status": page.text_content("#status"),
        "criteria": {
            c.get_attribute("data-criterion"): c.locator("td.value").text_content() for c in cells
        },
        "missing": page.locator("#missing li").count(),
    }


def python_view(protocol: critlang.Protocol, record: dict[str, Any]) -> dict[str, Any]:
    result = protocol.evaluate(record)
    criteria: dict[str, str] = {}
    for criterion in result.criteria:
        criteria[criterion.id] = criterion.value_word
        for part in criterion.parts:
            criteria[f"{criterion.id}.{part.name}"] = part.value_word
    return {"status": result.status, "criteria": criteria, "missing": len(result.missing)}


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_a_coordinator_fills_the_example_patients(path: Path, page: Page, tmp_path: Path) -> None:
    protocol = critlang.load(path)
    open_form(page, protocol, tmp_path)
    for example in protocol.checked.protocol.examples:
        record = example_record(example, protocol.checked.protocol)
        fill(page, protocol, record)
        expected = python_view(protocol, record)
        assert expected["status"] == example.expect.text, example.title
        assert shown(page) == expected, example.title
        # The record the form saves is read by critlang eval to the same answer.
        saved = tmp_path / "saved.json"
        saved.write_text(page.input_value("#record-json"), encoding="utf-8")
        run = CliRunner().invoke(main, ["eval", str(path), str(saved), "--format", "json"])
        (result,) = json.loads(run.stdout)
        assert result["status"] == expected["status"], example.title


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


# ---- histories, codes and partial dates -----------------------------------------------------

T2D = Path("protocols/t2d_metformin.crit")


def eligible_t2d(page: Page, tmp_path: Path) -> tuple[critlang.Protocol, dict[str, Any]]:
    """The form of t2d_metformin with its first example patient (eligible, in full) entered."""
    protocol = critlang.load(T2D)
    open_form(page, protocol, tmp_path)
    record = example_record(protocol.checked.protocol.examples[0], protocol.checked.protocol)
    fill(page, protocol, record)
    assert shown(page) == python_view(protocol, record)
    assert shown(page)["status"] == "eligible"
    return protocol, record


def test_adding_and_removing_entries_flips_a_history_criterion(page: Page, tmp_path: Path) -> None:
    protocol, record = eligible_t2d(page, tmp_path)
    drugs = page.locator('[data-field="diabetes_drugs"]')
    assert drugs.locator(".entry").count() == 1
    drugs.get_by_role("button", name="Add an entry").click()
    assert page.evaluate("() => document.activeElement.dataset.part") == "start"
    row = drugs.locator(".entry").last
    # The likeliest system first: the protocol's drug system for a medication.
    assert row.get_by_label("System").input_value() == "atc"
    row.get_by_label("Start").fill("2025-01-01")
    row.get_by_label("End").fill("2026-04-20")
    row.get_by_label("System").select_option("atc")
    row.get_by_label("Code").fill("A10BH01")
    row.get_by_label("Dose").fill("100")
    sitagliptin = {
        "start": "2025-01-01",
        "end": "2026-04-20",
        "code": "atc:A10BH01",
        "dose": 100,
        "unit": "mg/d",
    }
    with_sitagliptin = {**record, "diabetes_drugs": [*record["diabetes_drugs"], sitagliptin]}
    expected = python_view(protocol, with_sitagliptin)
    # Sitagliptin stopped 8 weeks before enrolment: another oral agent within 10 weeks.
    assert expected["status"] == "ineligible"
    assert expected["criteria"]["I3.c"] == "false"
    assert shown(page) == expected
    assert json.loads(page.input_value("#record-json"))["diabetes_drugs"][-1] == sitagliptin

    row.get_by_role("button", name="Remove this entry").click()
    assert drugs.locator(".entry").count() == 1
    assert shown(page) == python_view(protocol, record)
    assert page.evaluate("() => document.activeElement.dataset.add") == ""

    # With no entry left the complete history says: no diabetes drug at all.
    drugs.get_by_role("button", name="Remove this entry").click()
    none = {**record, "diabetes_drugs": []}
    assert python_view(protocol, none)["criteria"]["I3.a"] == "false"
    assert shown(page) == python_view(protocol, none)
    assert json.loads(page.input_value("#record-json"))["diabetes_drugs"] == []
    # Not known is another answer than none: undetermined, and asked for.
    drugs.locator("#field-diabetes_drugs").select_option("")
    unknown = {k: v for k, v in record.items() if k != "diabetes_drugs"}
    assert shown(page) == python_view(protocol, unknown)
    assert shown(page)["status"] == "undetermined"
    assert "Drugs used in diabetes" in page.locator("#missing li").all_text_contents()


def test_a_measurement_entry_changes_the_latest_value(page: Page, tmp_path: Path) -> None:
    protocol, record = eligible_t2d(page, tmp_path)
    weights = page.locator('[data-field="weights"]')
    weights.get_by_role("button", name="Add an entry").click()
    row = weights.locator(".entry").last
    row.get_by_label("Date").fill("2026-06-14")
    row.get_by_label("Value").fill("80.5")
    latest = {"date": "2026-06-14", "value": Decimal("80.5"), "unit": "kg"}
    changed = {**record, "weights": [*record["weights"], latest]}
    # From 92 kg to 80.5 kg in 3 months is a fall of 12.5%: more than 10%.
    assert python_view(protocol, changed)["criteria"]["E3"] == "true"
    assert shown(page) == python_view(protocol, changed)
    assert (
        json.loads(page.input_value("#record-json"), parse_float=Decimal)["weights"][-1] == latest
    )


def test_a_partial_date_is_read_as_the_days_it_may_be(page: Page, tmp_path: Path) -> None:
    protocol, record = eligible_t2d(page, tmp_path)
    for given, status in (
        ("1948", "undetermined"),
        ("1949-05", "eligible"),
        ("1948-01", "ineligible"),
    ):
        page.fill("#field-birth_date", given)
        expected = python_view(protocol, {**record, "birth_date": given})
        assert expected["status"] == status, given
        assert shown(page) == expected, given
        assert json.loads(page.input_value("#record-json"))["birth_date"] == given
    page.fill("#field-birth_date", "1948-13")
    assert "not a day of the calendar" in page.text_content("#problem-birth_date")
    assert page.get_attribute("#field-birth_date", "aria-invalid") == "true"
    assert page.text_content("#status") == "check the highlighted answers"


def test_an_entry_that_does_not_fit_is_shown_and_not_used(page: Page, tmp_path: Path) -> None:
    protocol, record = eligible_t2d(page, tmp_path)
    weights = page.locator('[data-field="weights"]')
    weights.get_by_role("button", name="Add an entry").click()
    row = weights.locator(".entry").last
    # A blank row is not an entry yet.
    assert shown(page) == python_view(protocol, record)
    cases = [
        ("Date", "2026-07-01", "date: after the reference date (2026-06-15)"),
        ("Date", "2026-02-30", "date: not a day of the calendar"),
        ("Date", "2026-06", "date: not a date: write YYYY-MM-DD"),
        ("Date", "", "the entry needs its date"),
    ]
    row.get_by_label("Value").fill("8o")
    assert row.locator(".problem").text_content() == "the entry needs its date"
    row.get_by_label("Date").fill("2026-06-01")
    assert row.locator(".problem").text_content() == "value: not a number"
    assert row.get_by_label("Value").get_attribute("aria-invalid") == "true"
    row.get_by_label("Value").fill("88")
    for label, text, problem in cases:
        row.get_by_label(label).fill(text)
        assert (row.locator(".problem").text_content() or "").startswith(problem), text
        assert page.text_content("#status") == "check the highlighted answers"
        assert page.text_content("#problem-weights") == "check the highlighted entries"
    row.get_by_label("Date").fill("2026-06-01")
    assert row.locator(".problem").text_content() == ""
    assert page.text_content("#problem-weights") == ""

    drugs = page.locator('[data-field="diabetes_drugs"]')
    drugs.get_by_role("button", name="Add an entry").click()
    row = drugs.locator(".entry").last
    row.get_by_label("Start").fill("2026-03-01")
    row.get_by_label("End").fill("2026-02-01")
    row.get_by_label("System").select_option("atc")
    row.get_by_label("Code").fill("A10BH01")
    assert row.locator(".problem").text_content() == "end: before the start (2026-03-01)"
    row.get_by_label("End").fill("")
    row.get_by_label("Code").fill("A10.BH")
    assert row.locator(".problem").text_content() == "code: not a code of atc"
    row.get_by_label("System").select_option("icd10cm")
    row.get_by_label("Code").fill("E11..9")
    assert row.locator(".problem").text_content() == "code: more than one dot"


HOSTILE = """\
protocol hostile
  title "<script>window.pwned = 1</script>"
  as of screening

data
  screening: date
    label "Screening </script><img src=x onerror=\\"window.pwned = 2\\">"
  events: history of codes complete
    label "Events <img src=x onerror=\\"window.pwned = 3\\">"

codes bad "<b>bad</b> codes" icd10cm ("J84.*")

exclusion E1 "Anything <b>bad</b> in the last year"
  met when any events within 1 year where its code in bad
"""


def test_what_a_protocol_or_a_coordinator_writes_is_shown_as_text(
    page: Page, tmp_path: Path
) -> None:
    protocol = critlang.compile_source(HOSTILE)
    open_form(page, protocol, tmp_path)
    assert page.locator("img").count() == 0
    assert page.locator("form b, section b").count() == 0
    assert page.text_content("#label-events") == 'Events <img src=x onerror="window.pwned = 3">'
    page.fill("#field-screening", "2026-06-15")
    page.fill("#field-id", '</script><img src=x onerror="window.pwned = 4">')
    events = page.locator('[data-field="events"]')
    events.get_by_role("button", name="Add an entry").click()
    row = events.locator(".entry").last
    row.get_by_label("Date").fill("2026-01-02")
    row.get_by_label("System").select_option("icd10cm")
    row.get_by_label("Code").fill('"><img src=x onerror="window.pwned = 5">')
    assert row.locator(".problem").text_content() == "code: not a code of icd10cm"
    row.get_by_label("Code").fill("J84.10")
    assert page.text_content("#status") == "ineligible"
    saved = json.loads(page.input_value("#record-json"))
    assert saved["id"] == '</script><img src=x onerror="window.pwned = 4">'
    assert saved["events"] == [{"date": "2026-01-02", "code": "icd10cm:J8410"}]
    assert protocol.evaluate(saved).status == "ineligible"
    assert page.locator("img").count() == 0
    assert page.evaluate("() => window.pwned") is None
