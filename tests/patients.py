"""Shared test patients for ctd_ild."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

D = Decimal

# A complete record that meets every inclusion and no exclusion, each value
# chosen away from its boundary so a test can move exactly one of them.
ELIGIBLE: dict[str, Any] = {
    "age": 45,  # 'a'
    "sex": "female",
    "ctd_diagnoses": ["rheumatoid_arthritis"],
    "treatment_duration": 30,  # 'mo': more than 24, so alternative a can hold
    "steroid_dose": 20,  # 'mg/d': 20 / 60 kg = 0.33 mg/kg/d, so alternative b is false
    "body_weight": 60,
    "fvc_baseline": D("3.0"),
    "fvc_current": D("2.6"),  # (3.0 - 2.6) * 100 / 3.0 = 13.33% > 10%
    "dlco_baseline": 20,
    "dlco_current": 19,  # 5% decline
    "ct_lesions_enlarged": False,
    "symptom_duration": 400,  # 'd': far more than a month, so alternative c is false
    "dyspnea_worsening": False,
    "oxygen_declining": False,
    "family_support_confirmed": True,
    "childbearing_potential": True,
    "pregnancy_test": "negative",
    "contraception": True,
    "pregnant": False,
    "breastfeeding": False,
    "willing_to_consent": True,
    "improved_after_6_months": False,
    "got": 30,
    "gpt": 30,
    "enzymes_due_to_myopathy": False,
    "creatinine": D("0.9"),
    "hiv": False,
    "notifiable_infection": False,
}
