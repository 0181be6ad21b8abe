"""Demographics and outcomes of synthetic participants.

Overall and progression-free survival are exponential with a log-hazard linear in the true
T/S (higher → worse), the true tumour time-to-peak (earlier → worse) and grade, so that the
survival analyses (docs/statistics.md#survival) find a real effect rather than noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Baseline overall-survival hazard (/month) at T/S = 1, TTP = 15 min, LGG: median 36 months.
BASELINE_HAZARD = np.log(2) / 36.0
#: Log-hazard coefficients: per unit of T/S above 1, per 10 min of TTP before 15 min, for HGG.
BETA_TSR, BETA_TTP, BETA_HGG = 1.2, 0.4, 0.7
#: Progression hazard relative to the death hazard.
PROGRESSION_RATIO = 2.0
#: Sites (scanners) and the centre of their PSF FWHM (mm).
SITES: dict[str, float] = {"site-01": 4.8, "site-02": 5.6, "site-03": 6.2}


@dataclass(frozen=True)
class Outcome:
    """Survival outcome in months, with event indicators (1 = event, 0 = censored)."""

    os_months: float
    os_event: int
    pfs_months: float
    pfs_event: int


def draw_age(rng: np.random.Generator, cohort: str) -> float:
    """Age in years, one decimal: 2.0–17.9 for the paediatric cohort, 20–80 for adults."""
    low, high = (2.0, 17.9) if cohort == "paediatric" else (20.0, 80.0)
    return float(round(rng.uniform(low, high), 1))


def draw_body_weight(rng: np.random.Generator, age: float) -> float:
    """Body weight (kg) from a smooth growth curve with 15 % log-normal spread."""
    typical = np.interp(age, [2, 6, 10, 14, 18, 80], [12, 20, 32, 50, 65, 75])
    return float(round(typical * rng.lognormal(0.0, 0.15), 1))


def injected_mbq(rng: np.random.Generator, weight_kg: float, cohort: str) -> float:
    """Injected activity (MBq): ≈185 MBq for adults, 4 MBq/kg (≥ 28 MBq) for children."""
    dose = 185.0 if cohort == "adult" else max(4.0 * weight_kg, 28.0)
    return float(round(dose * rng.uniform(0.9, 1.1), 1))


def draw_psf_fwhm(rng: np.random.Generator, site: str) -> float:
    """Scanner PSF FWHM (mm) of a site, clipped to the clinical range 4.5–6.5 mm."""
    return float(round(np.clip(SITES[site] + rng.normal(0.0, 0.2), 4.5, 6.5), 2))


def log_hazard(tsr: float, ttp_min: float, grade: str) -> float:
    """Log of the overall-survival hazard (/month)."""
    return float(
        np.log(BASELINE_HAZARD)
        + BETA_TSR * (tsr - 1.0)
        + BETA_TTP * (15.0 - ttp_min) / 10.0
        + BETA_HGG * (grade == "HGG")
    )


def draw_outcome(rng: np.random.Generator, tsr: float, ttp_min: float, grade: str) -> Outcome:
    """Draw OS and PFS with administrative censoring at 24–96 months of follow-up.

    Death counts as an event for PFS; PFS never exceeds OS.
    """
    hazard = np.exp(log_hazard(tsr, ttp_min, grade))
    death = rng.exponential(1.0 / hazard)
    progression = rng.exponential(1.0 / (PROGRESSION_RATIO * hazard))
    follow_up = rng.uniform(24.0, 96.0)
    os_months = min(death, follow_up)
    pfs_months = min(progression, death, follow_up)
    return Outcome(
        os_months=round(float(os_months), 2),
        os_event=int(death <= follow_up),
        pfs_months=round(float(pfs_months), 2),
        pfs_event=int(min(progression, death) <= follow_up),
    )
