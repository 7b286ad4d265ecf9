"""Patients per second with histories of 200 entries, against a hand-written baseline in the same run.

    .venv/bin/python bench/bench_histories.py [--patients 5000] [--write docs/benchmarks.md]

The protocol (PROTOCOL below) reads four histories as the protocols of
`protocols/` do: a code list over diagnoses, the latest creatinine in a
window, the latest ALT over its own upper limit, glucocorticoids taken during
a window and an ongoing, stable immunosuppressant. Each patient has 50 entries
in each history (200 in all), spread over five years.

The baseline (`tight_status`) is the same logic written by hand in plain
Python over the same environments (entries as `records.py` makes them),
three-valued, with the checks a careful programmer would inline. Ratios are
the claim: both run on the same machine, in the same process.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import os
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_evaluate import best_rate
from sections import write_section

import critlang
from critlang.decimals import ARITHMETIC

PROTOCOL = """
protocol bench_histories

codes ild "Interstitial lung disease" icd10cm ("J84.*", "J99.1", "M34.81")
codes glucocorticoids "Systemic glucocorticoids" atc ("H02AB*")
codes mycophenolate "Mycophenolate" atc ("L04AA06")

data
  screening: date
  stable_since: date
  creatinine: history of quantity 'mg/dL' complete
  alt: history of quantity 'U/L'
  diagnoses: history of codes complete
  medications: history of medications 'mg/d' complete

inclusion I1 "Interstitial lung disease"
  met when any diagnoses where its code in ild

inclusion I2 "Latest creatinine within 90 days below 1.5 mg/dL"
  met when (latest creatinine within 90 days before screening) < 1.5 'mg/dL'

exclusion E1 "Latest ALT within 4 weeks above 3 times its upper limit"
  met when (latest (its value / its upper limit) of alt within 4 weeks before screening) > 3

exclusion E2 "Glucocorticoids above 10 mg/d within 2 weeks"
  met when any medications where its code in glucocorticoids and its dose > 10 'mg/d'
    within 2 weeks before screening

inclusion I3 "Mycophenolate, ongoing, started before stable_since"
  met when any medications where its code in mycophenolate and ongoing
    and its start <= stable_since
"""
SCREENING = datetime.date(2026, 6, 1)
DIAGNOSES = ["icd10cm:I10", "icd10cm:E119", "icd10cm:J8410", "icd10cm:M3481", "icd10cm:J449"]
DRUGS = ["atc:H02AB06", "atc:L04AA06", "atc:C09AA05", "atc:A10BA02", "atc:L04AX01"]
ENTRIES = 50  # per history, four histories


def make_patient(rng: random.Random, number: int) -> dict[str, Any]:
    """A patient's record in the JSON form of docs/records.md (intake reads it once)."""

    def day() -> datetime.date:
        return SCREENING - datetime.timedelta(days=rng.randint(0, 5 * 365))

    creatinine = [
        {
            "date": day().isoformat(),
            "value": Decimal(rng.randint(50, 160)) / 100,
            "unit": "mg/dL",
            "high": Decimal("1.2"),
            "source": f"Observation/{number}-{n}",
        }
        for n in range(ENTRIES)
    ]
    alt = [
        {"date": day().isoformat(), "value": Decimal(rng.randint(10, 140)), "unit": "U/L"}
        | ({"high": Decimal(40)} if rng.random() < 0.98 else {})
        for _ in range(ENTRIES)
    ]
    diagnoses = [{"date": day().isoformat(), "code": rng.choice(DIAGNOSES)} for _ in range(ENTRIES)]
    medications = []
    for _ in range(ENTRIES):
        start = day()
        end = None if rng.random() < 0.2 else start + datetime.timedelta(days=rng.randint(1, 400))
        medications.append(
            {
                "start": start.isoformat(),
                "end": None if end is None else end.isoformat(),
                "code": rng.choice(DRUGS),
                "dose": Decimal(rng.choice([5, 10, 20, 1000, 2000])),
                "unit": "mg/d",
            }
        )
    return {
        "id": f"p{number}",
        "screening": SCREENING.isoformat(),
        "stable_since": (SCREENING - datetime.timedelta(weeks=12)).isoformat(),
        "creatinine": creatinine,
        "alt": alt,
        "diagnoses": diagnoses,
        "medications": medications,
    }


# ---- the hand-written baseline ----------------------------------------------------

ILD_CODES = frozenset({"icd10cm:J991", "icd10cm:M3481"})
ILD_PREFIXES = ("icd10cm:J84",)
LIMIT_CREATININE, LIMIT_RATIO, LIMIT_DOSE = Decimal("1.5"), Decimal(3), Decimal(10)


def _latest(entries: Any, start: datetime.date, end: datetime.date, ratio: bool) -> Any:
    best_date = best = None
    conflict = False
    for day, value, _low, high, _source in entries:
        if start <= day <= end:
            if ratio:
                value = None if high is None or high == 0 else value / high
            if best_date is None or day > best_date:
                best_date, best, conflict = day, value, value is None
            elif day == best_date and (value is None or value != best):
                conflict = True
    return None if conflict else best


def tight_status(env: dict[str, Any]) -> str:
    screening = env.get("screening")
    diagnoses = env.get("diagnoses")
    i1 = None
    if diagnoses is not None:
        i1 = False
        for _day, code, _source in diagnoses:
            if code in ILD_CODES or code.startswith(ILD_PREFIXES):
                i1 = True
                break
    if i1 is False:
        return "ineligible"
    creatinine, alt = env.get("creatinine"), env.get("alt")
    i2 = e1 = None
    if screening is not None and creatinine is not None:
        latest = _latest(creatinine, screening - datetime.timedelta(days=90), screening, False)
        i2 = None if latest is None else latest < LIMIT_CREATININE
    if i2 is False:
        return "ineligible"
    if screening is not None and alt is not None:
        latest = _latest(alt, screening - datetime.timedelta(weeks=4), screening, True)
        e1 = None if latest is None else latest > LIMIT_RATIO
    if e1 is True:
        return "ineligible"
    medications = env.get("medications")
    e2 = i3 = None
    if medications is not None and screening is not None:
        e2 = False
        window_start = screening - datetime.timedelta(weeks=2)
        for start, end, code, dose, _source in medications:
            if not code.startswith("atc:H02AB"):
                continue
            if start > screening or (end is not None and end < window_start):
                continue
            if dose is None:
                e2 = None
            elif dose > LIMIT_DOSE:
                e2 = True
                break
    if e2 is True:
        return "ineligible"
    stable_since = env.get("stable_since")
    if medications is not None:
        i3 = False
        for start, end, code, _dose, _source in medications:
            if code == "atc:L04AA06" and end is None:
                if stable_since is None:
                    i3 = None
                elif start <= stable_since:
                    i3 = True
                    break
    if i3 is False:
        return "ineligible"
    if i1 and i2 and e1 is False and e2 is False and i3:
        return "eligible"
    return "undetermined"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path, help="update this Markdown file's section")
    args = parser.parse_args()

    protocol = critlang.compile_source(PROTOCOL, "bench_histories.crit")
    rng = random.Random(20261129)
    envs = [protocol.intake(make_patient(rng, n), n)[1] for n in range(args.patients)]
    status = protocol.compiled.status
    with decimal.localcontext(ARITHMETIC):
        agree = sum(status(env) == tight_status(env) for env in envs)
        statuses = Counter(status(env) for env in envs)
    assert agree == len(envs), f"hand-written baseline disagrees on {len(envs) - agree} patients"

    def run_handwritten() -> None:
        with decimal.localcontext(ARITHMETIC):
            for env in envs:
                tight_status(env)

    def run_status() -> None:
        with decimal.localcontext(ARITHMETIC):
            for env in envs:
                status(env)

    def run_evaluated() -> None:
        for env in envs:
            protocol.explain("x", env)

    def run_explained() -> None:
        for env in envs:
            protocol.explain("x", env).to_dict()

    baseline = best_rate(run_handwritten, len(envs), args.repeats)
    rows = [
        ("hand-written Python function (status)", baseline),
        ("critlang compiled status", best_rate(run_status, len(envs), args.repeats)),
        (
            "critlang evaluate: every criterion's value, the missing data",
            best_rate(run_evaluated, len(envs), args.repeats),
        ),
        (
            "critlang evaluate + to_dict(): reasons citing entries",
            best_rate(run_explained, len(envs), args.repeats),
        ),
    ]
    evaluated = rows[2][1]
    table = [
        "| path | patients/s | time relative to the hand-written function |",
        "|---|---:|---:|",
        *(f"| {name} | {rate:,.0f} | {baseline / rate:.2f}x |" for name, rate in rows),
    ]
    counts = ", ".join(f"{statuses[s]} {s}" for s in ("eligible", "ineligible", "undetermined"))
    body = "\n".join(
        [
            f"Measured by `bench/bench_histories.py --patients {args.patients}`, one core: "
            f"{ENTRIES * 4} history entries per patient (four histories of {ENTRIES}), "
            f"five criteria over them ({counts}).",
            "",
            *table,
            "",
            f"- The target, at least 10,000 patients/s of Python evaluation on one core, is "
            f"{'met' if evaluated >= 10000 else 'not met'} by `evaluate` ({evaluated:,.0f}/s: every",
            "  criterion's value, the entry each selector used and the missing data);",
            "  `to_dict()` adds every reason in words, citing the entries.",
            f"- Conditions: one process, one thread, {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f} at the end of the run; rates are patients per second of",
            f"  CPU time of the process, each the best of {args.repeats} runs.",
        ]
    )
    print(body)
    if args.write is not None:
        write_section(args.write, "## Histories in Python", body)


if __name__ == "__main__":
    main()
