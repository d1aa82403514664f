"""User-level statistics of ratio metrics (clicks per shown item, ...) from running sums.

Users, not impressions, are the independent units: assignment is per user, and one user's
impressions are correlated (a shopper who likes the shop clicks on many lists). A rate
R = sum(y) / sum(x) over a group's users (x: a user's impressions, y: their clicks) is a
ratio of two means, and its variance comes from the delta method (Deng et al., "Applying
the Delta Method in Metric Analytics", KDD 2018):

    Var(R) ~ (s_yy - 2 R s_xy + R^2 s_xx) / (n * mean(x)^2)

with s the sample (co)variances of the per-user (x, y), which need only n, sum x, sum y,
sum x^2, sum y^2 and sum xy: counters Redis keeps as events arrive. Two groups are
independent, so the difference of their rates has the sum of their variances; the test is a
two-sided z-test (Welch-like, no equal-variance assumption), the interval a 95% normal one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Sums:
    """A group's per-user sums for one ratio metric y / x."""

    n: int  # users
    x: float
    y: float
    xx: float
    yy: float
    xy: float


@dataclass(frozen=True)
class Rate:
    value: float | None  # None when the group has no exposure yet
    se: float | None

    def interval(self) -> tuple[float, float] | None:
        if self.value is None or self.se is None:
            return None
        return self.value - Z95 * self.se, self.value + Z95 * self.se


def ratio(s: Sums) -> Rate:
    """The rate sum(y) / sum(x) and its delta-method standard error (None below 2 users)."""
    if s.n == 0 or s.x <= 0:
        return Rate(None, None)
    value = s.y / s.x
    if s.n < 2:
        return Rate(value, None)
    mx, my = s.x / s.n, s.y / s.n
    sxx = (s.xx - s.n * mx * mx) / (s.n - 1)
    syy = (s.yy - s.n * my * my) / (s.n - 1)
    sxy = (s.xy - s.n * mx * my) / (s.n - 1)
    variance = (syy - 2 * value * sxy + value * value * sxx) / (s.n * mx * mx)
    return Rate(value, math.sqrt(max(variance, 0.0)))


@dataclass(frozen=True)
class Difference:
    value: float  # treatment rate - control rate
    se: float
    relative: float | None  # value / control rate
    p_value: float


def difference(treatment: Rate, control: Rate) -> Difference | None:
    """Treatment minus control with its two-sided z-test p-value (None without both errors)."""
    if treatment.value is None or control.value is None or treatment.se is None or control.se is None:
        return None
    value = treatment.value - control.value
    se = math.sqrt(treatment.se**2 + control.se**2)
    # se 0: both groups constant; equal rates are no evidence, different ones are certain.
    p_value = math.erfc(abs(value / se) / math.sqrt(2)) if se > 0 else float(value == 0)
    relative = value / control.value if control.value > 0 else None
    return Difference(value, se, relative, p_value)
