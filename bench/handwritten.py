"""ctd_ild written by hand, tightly: the baselines the benchmarks measure critlang against.

`tight_status` is what a good engineer would write for speed: three-valued
logic inlined as `None` checks, early exits, no helper calls. `tight_result`
adds every criterion's and part's value and a reason in f-strings for each,
in the shape of `Result.to_dict()`: the same content critlang's
explanations carry (each condition with its value and its limit), worded
without critlang's choice of the deciding path.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

CTD = frozenset(
    (
        "dermatomyositis",
        "polymyositis",
        "systemic_sclerosis",
        "systemic_lupus_erythematosus",
        "rheumatoid_arthritis",
        "sjogren_syndrome",
    )
)
ONE_MONTH_IN_DAYS = Decimal("30.4375")
D24, D3, D10, D5, D15, D80 = (Decimal(n) for n in (24, 3, 10, 5, 15, 80))
D08, D14 = Decimal("0.8"), Decimal("1.4")


def _decline(baseline: Any, current: Any) -> Any:
    if baseline is None or current is None or baseline == 0:
        return None
    return (baseline - current) * 100 / baseline


def tight_status(env: dict[str, Any]) -> str:
    get = env.get
    unknown = False
    age, dx = get("age"), get("ctd_diagnoses")
    if age is not None and not 20 <= age <= 80:
        return "ineligible"
    if dx is not None and dx.isdisjoint(CTD):
        return "ineligible"
    unknown = age is None or dx is None
    t, ct = get("treatment_duration"), get("ct_lesions_enlarged")
    fvc = _decline(get("fvc_baseline"), get("fvc_current"))
    dlco = _decline(get("dlco_baseline"), get("dlco_current"))
    dose, weight = get("steroid_dose"), get("body_weight")
    per_kg = None if dose is None or weight is None or weight == 0 else dose / weight
    # I2 a
    band = None if fvc is None else 5 <= fvc <= 10
    d15 = None if dlco is None else dlco > D15
    mid = (
        False if band is False or d15 is False else (None if band is None or d15 is None else True)
    )
    alt = (fvc is not None and fvc > D10) or mid is True or ct is True
    if not alt:
        alt = None if fvc is None or mid is None or ct is None else False
    over = None if t is None else t > D24
    a = False if over is False or alt is False else (None if over is None or alt is None else True)
    # I2 b
    alt_b = (fvc is not None and fvc > D5) or (dlco is not None and dlco > D10) or ct is True
    if not alt_b:
        alt_b = None if fvc is None or dlco is None or ct is None else False
    over_b = None if t is None else t > D3
    heavy = None if per_kg is None else per_kg > D08
    if over_b is False or heavy is False or alt_b is False:
        b: bool | None = False
    else:
        b = None if over_b is None or heavy is None or alt_b is None else True
    # I2 c
    symptoms = get("symptom_duration")
    recent = None if symptoms is None else symptoms <= ONE_MONTH_IN_DAYS
    dysp, oxy = get("dyspnea_worsening"), get("oxygen_declining")
    both = (
        False if dysp is False or oxy is False else (None if dysp is None or oxy is None else True)
    )
    worse = True if both is True or ct is True else (None if both is None or ct is None else False)
    c = (
        False
        if recent is False or worse is False
        else (None if recent is None or worse is None else True)
    )
    if a is not True and b is not True and c is not True:
        if a is False and b is False and c is False:
            return "ineligible"
        unknown = True
    family = get("family_support_confirmed")
    if family is False:
        return "ineligible"
    unknown = unknown or family is None
    sex, potential = get("sex"), get("childbearing_potential")
    female = None if sex is None else sex == "female"
    woman = (
        False
        if female is False or potential is False
        else (None if female is None or potential is None else True)
    )
    test = get("pregnancy_test")
    if woman is not False and test is not None and test != "negative" and woman is True:
        return "ineligible"
    if woman is not False and test != "negative":
        unknown = True
    contraception = get("contraception")
    if woman is True and contraception is False:
        return "ineligible"
    if woman is not False and contraception is not True:
        unknown = True
    consent = get("willing_to_consent")
    if consent is False:
        return "ineligible"
    improved = get("improved_after_6_months")
    if improved is True:
        return "ineligible"
    unknown = unknown or consent is None or improved is None
    pregnant, feeding = get("pregnant"), get("breastfeeding")
    either = (
        True
        if pregnant is True or feeding is True
        else (None if pregnant is None or feeding is None else False)
    )
    e3a = (
        False
        if female is False or either is False
        else (None if female is None or either is None else True)
    )
    no_contraception = None if contraception is None else not contraception
    e3b = (
        False
        if woman is False or no_contraception is False
        else (None if woman is None or no_contraception is None else True)
    )
    if e3a is True or e3b is True:
        return "ineligible"
    unknown = unknown or e3a is None or e3b is None
    got, gpt, myopathy = get("got"), get("gpt"), get("enzymes_due_to_myopathy")
    high = (
        True
        if (got is not None and got > D80) or (gpt is not None and gpt > D80)
        else (None if got is None or gpt is None else False)
    )
    liver = (
        False
        if high is False or myopathy is True
        else (None if high is None or myopathy is None else True)
    )
    creatinine = get("creatinine")
    kidney = None if creatinine is None else creatinine > D14
    if liver is True or kidney is True:
        return "ineligible"
    unknown = unknown or liver is None or kidney is None
    hiv, notifiable = get("hiv"), get("notifiable_infection")
    if hiv is True or notifiable is True:
        return "ineligible"
    if unknown or hiv is None or notifiable is None:
        return "undetermined"
    return "eligible"


# ---- values and reasons in f-strings ------------------------------------------------


def _q(value: Any, unit: str) -> str:
    if value is None:
        return "unknown"
    if value == value.to_integral_value():
        return f"{value:.0f}{unit}"
    return f"about {value:.2f}{unit}"


def _yn(value: Any) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _word(value: Any) -> str:
    return "unknown" if value is None else ("true" if value else "false")


def _gt(label: str, value: Any, limit: str, unit: str, outcome: Any) -> str:
    if outcome is None:
        return f"{label} is unknown (the criterion asks for more than {limit}{unit})"
    return f"{label} {_q(value, unit)} {'is' if outcome else 'is not'} more than {limit}{unit}"


def _and(*values: Any) -> Any:
    return False if False in values else (None if None in values else True)


def _or(*values: Any) -> Any:
    return True if True in values else (None if None in values else False)


def tight_result(env: dict[str, Any], record_id: str) -> dict[str, Any]:
    get = env.get
    age, dx = get("age"), get("ctd_diagnoses")
    in_age = None if age is None else 20 <= age <= 80
    has = None if dx is None else not dx.isdisjoint(CTD)
    i1 = _and(in_age, has)
    r1 = (
        f"Age {_q(age, ' years')} {'is' if in_age else 'is not'} between 20 years and 80 years "
        f"(inclusive); Connective tissue diseases diagnosed: "
        f"{', '.join(sorted(dx & CTD)) if dx else 'none'}"
    )
    t, ct = get("treatment_duration"), get("ct_lesions_enlarged")
    fvc = _decline(get("fvc_baseline"), get("fvc_current"))
    dlco = _decline(get("dlco_baseline"), get("dlco_current"))
    dose, weight = get("steroid_dose"), get("body_weight")
    per_kg = None if dose is None or weight is None or weight == 0 else dose / weight
    over24 = None if t is None else t > D24
    f10 = None if fvc is None else fvc > D10
    band = None if fvc is None else 5 <= fvc <= 10
    d15 = None if dlco is None else dlco > D15
    a = _and(over24, _or(f10, _and(band, d15), ct))
    ra = (
        f"{_gt('Time on steroids plus potent immunosuppressants', t, '24', ' months', over24)}; "
        f"{_gt('FVC decline from baseline', fvc, '10', '%', f10)}; "
        f"Lung lesions enlarged on CT: {_yn(ct)}"
    )
    over3 = None if t is None else t > D3
    heavy = None if per_kg is None else per_kg > D08
    f5 = None if fvc is None else fvc > D5
    d10 = None if dlco is None else dlco > D10
    b = _and(over3, heavy, _or(f5, d10, ct))
    rb = (
        f"{_gt('Time on steroids plus potent immunosuppressants', t, '3', ' months', over3)}; "
        f"{_gt('Steroid dose per kilogram of body weight', per_kg, '0.8', ' mg/kg/d', heavy)}; "
        f"{_gt('FVC decline from baseline', fvc, '5', '%', f5)}"
    )
    symptoms = get("symptom_duration")
    recent = None if symptoms is None else symptoms <= ONE_MONTH_IN_DAYS
    c = _and(recent, _or(_and(get("dyspnea_worsening"), get("oxygen_declining")), ct))
    rc = f"Time since onset of pulmonary symptoms {_q(symptoms, ' days')} is {'' if recent else 'not '}at most 1 month"
    i2 = _or(a, b, c)
    family = get("family_support_confirmed")
    sex, potential = get("sex"), get("childbearing_potential")
    woman = _and(None if sex is None else sex == "female", potential)
    test = get("pregnancy_test")
    i4 = _or(None if woman is None else not woman, None if test is None else test == "negative")
    contraception = get("contraception")
    i5 = _or(None if woman is None else not woman, contraception)
    consent, improved = get("willing_to_consent"), get("improved_after_6_months")
    female = None if sex is None else sex == "female"
    e3a = _and(female, _or(get("pregnant"), get("breastfeeding")))
    e3b = _and(woman, None if contraception is None else not contraception)
    got, gpt, creatinine = get("got"), get("gpt"), get("creatinine")
    g80 = None if got is None else got > D80
    p80 = None if gpt is None else gpt > D80
    e4a = _and(
        _or(g80, p80),
        None if get("enzymes_due_to_myopathy") is None else not get("enzymes_due_to_myopathy"),
    )
    k = None if creatinine is None else creatinine > D14
    hiv, notifiable = get("hiv"), get("notifiable_infection")
    woman_words = f"Woman of childbearing potential: {_yn(woman)}"
    criteria = [
        {
            "id": "I1",
            "kind": "inclusion",
            "title": "Adult with a connective tissue disease",
            "value": _word(i1),
            "reason": r1,
        },
        {
            "id": "I2",
            "kind": "inclusion",
            "title": "Refractory, progressive or rapidly worsening ILD",
            "value": _word(i2),
            "reason": f"a: {ra}; b: {rb}; c: {rc}",
            "parts": [
                {
                    "name": "a",
                    "title": "Refractory or progressive fibrotic ILD",
                    "value": _word(a),
                    "reason": ra,
                },
                {"name": "b", "title": "Rapidly progressive ILD", "value": _word(b), "reason": rb},
                {
                    "name": "c",
                    "title": "Rapidly worsening condition",
                    "value": _word(c),
                    "reason": rc,
                },
            ],
        },
        {
            "id": "I3",
            "kind": "inclusion",
            "title": "Family support confirmed",
            "value": _word(family),
            "reason": f"Well-established family support system, confirmed by interviews: {_yn(family)}",
        },
        {
            "id": "I4",
            "kind": "inclusion",
            "title": "Negative pregnancy test",
            "value": "not applicable" if woman is False else _word(i4),
            "reason": f"{woman_words}; High-sensitivity urine pregnancy test before the trial: {test or 'unknown'}",
        },
        {
            "id": "I5",
            "kind": "inclusion",
            "title": "Agrees to contraception",
            "value": "not applicable" if woman is False else _word(i5),
            "reason": f"{woman_words}; Uses effective contraception: {_yn(contraception)}",
        },
        {
            "id": "E1",
            "kind": "exclusion",
            "title": "Not willing to consent",
            "value": _word(None if consent is None else not consent),
            "reason": f"Willing to sign the informed consent form after a detailed explanation: {_yn(consent)}",
        },
        {
            "id": "E2",
            "kind": "exclusion",
            "title": "Improved after 6 months",
            "value": _word(improved),
            "reason": f"Lung function or CT lesions improved after 6 months of steroids and immunosuppressants: {_yn(improved)}",
        },
        {
            "id": "E3",
            "kind": "exclusion",
            "title": "Pregnancy, breastfeeding or no contraception",
            "value": _word(_or(e3a, e3b)),
            "reason": f"a: Pregnant: {_yn(get('pregnant'))}; a: Breastfeeding: {_yn(get('breastfeeding'))}; b: {woman_words}",
            "parts": [
                {
                    "name": "a",
                    "title": "Pregnant or breastfeeding",
                    "value": _word(e3a),
                    "reason": f"Pregnant: {_yn(get('pregnant'))}; Breastfeeding: {_yn(get('breastfeeding'))}",
                },
                {
                    "name": "b",
                    "title": "No contraception",
                    "value": _word(e3b),
                    "reason": woman_words,
                },
            ],
        },
        {
            "id": "E4",
            "kind": "exclusion",
            "title": "Liver or kidney function",
            "value": _word(_or(e4a, k)),
            "reason": f"a: {_gt('Serum GOT (AST)', got, '80', ' U/L', g80)}; a: {_gt('Serum GPT (ALT)', gpt, '80', ' U/L', p80)}; b: {_gt('Serum creatinine', creatinine, '1.4', ' mg/dL', k)}",
            "parts": [
                {
                    "name": "a",
                    "title": "Transaminases",
                    "value": _word(e4a),
                    "reason": f"{_gt('Serum GOT (AST)', got, '80', ' U/L', g80)}; {_gt('Serum GPT (ALT)', gpt, '80', ' U/L', p80)}",
                },
                {
                    "name": "b",
                    "title": "Creatinine",
                    "value": _word(k),
                    "reason": _gt("Serum creatinine", creatinine, "1.4", " mg/dL", k),
                },
            ],
        },
        {
            "id": "E5",
            "kind": "exclusion",
            "title": "Infections",
            "value": _word(_or(hiv, notifiable)),
            "reason": f"HIV infection or AIDS: {_yn(hiv)}; Notifiable infectious disease (Ministry of Health announcements): {_yn(notifiable)}",
        },
    ]
    return {"id": record_id, "status": tight_status(env), "criteria": criteria, "missing": []}
