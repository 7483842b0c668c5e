"""Thresholds on a cost change, for pull requests: warn above, fail above.

A threshold is an increase of the expected monthly cost, in dollars (``+$500``) or in percent
of the baseline (``+10%``). ``assess(before, after, warn=..., fail=...)`` gives the verdict:
**over** when the increase is above the fail threshold, **warning** when above the warn
threshold, else **ok**; its exit code is what CI acts on (0 ok, 1 over, 3 warning).

The same function judges a budget: a budget is a fail threshold on the increase over nothing
(``assess(0, projected, fail=Threshold.dollars(budget))``), which is how ``check_budget`` and
the policy pack's budget rule use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Level = Literal["ok", "warning", "over"]
EXIT_CODES: dict[Level, int] = {"ok": 0, "over": 1, "warning": 3}
SYMBOLS: dict[Level, str] = {"ok": "✅", "warning": "⚠️", "over": "❌"}
_FORM = re.compile(r"^\+?\s*(?:(?P<dollar>\$)\s*)?(?P<n>\d[\d,]*(?:\.\d+)?)\s*(?P<pct>%)?$")


class ThresholdError(ValueError):
    """A threshold that is neither ``+$N`` nor ``+N%``."""


@dataclass(frozen=True)
class Threshold:
    amount: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """``+$500``, ``$500``, ``500`` (dollars a month) or ``+10%`` (of the baseline)."""
        match = _FORM.match(str(text).strip())
        if not match or (match["dollar"] and match["pct"]):
            raise ThresholdError(f"threshold {text!r}: give dollars a month (+$500) or a "
                                 "percent of the baseline (+10%)")
        return cls(float(match["n"].replace(",", "")), bool(match["pct"]))

    @classmethod
    def dollars(cls, amount: float) -> Threshold:
        return cls(float(amount), False)

    def allowed(self, before: float) -> float:
        """The increase in dollars a month this threshold allows over ``before``."""
        return before * self.amount / 100 if self.percent else self.amount

    def exceeded(self, before: float, after: float) -> bool:
        return after - before > self.allowed(before)

    def __str__(self) -> str:
        return f"+{self.amount:g}%" if self.percent else f"+${self.amount:,.2f}"

    def describe(self, before: float) -> str:
        """``+10% (+$400.00)``: the threshold and the dollars it stands for here."""
        return f"{self} (+${self.allowed(before):,.2f})" if self.percent else str(self)


@dataclass(frozen=True)
class Verdict:
    level: Level
    before: float
    after: float
    warn: Threshold | None
    fail: Threshold | None

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.level]

    @property
    def percent(self) -> float | None:
        return self.delta / self.before if self.before else None

    def reason(self) -> str:
        if self.level == "over":
            return f"above the fail threshold {self.fail.describe(self.before)}"
        if self.level == "warning":
            return f"above the warn threshold {self.warn.describe(self.before)}"
        limits = [f"{name} above {t.describe(self.before)}"
                  for name, t in (("warn", self.warn), ("fail", self.fail)) if t is not None]
        return ("within " + " and ".join(limits)) if limits else "no thresholds set"

    def change(self) -> str:
        sign = "+" if self.delta >= 0 else "-"
        text = f"{sign}${abs(self.delta):,.2f}/month"
        return text + (f" ({self.percent:+.1%})" if self.percent is not None else "")

    def headline(self) -> str:
        """One line: ``❌ over: +$1,200.00/month (+12.0%), above the fail threshold +10%``."""
        return f"{SYMBOLS[self.level]} {self.level}: {self.change()}, {self.reason()}"

    def as_dict(self) -> dict:
        return {"verdict": self.level, "exit_code": self.exit_code, "before": self.before,
                "after": self.after, "delta": self.delta, "percent": self.percent,
                "warn_above": str(self.warn) if self.warn else None,
                "fail_above": str(self.fail) if self.fail else None, "reason": self.reason()}


def assess(before: float, after: float, *, warn: Threshold | None = None,
           fail: Threshold | None = None) -> Verdict:
    """The verdict on a change of expected monthly cost from ``before`` to ``after``."""
    if fail is not None and fail.exceeded(before, after):
        level: Level = "over"
    elif warn is not None and warn.exceeded(before, after):
        level = "warning"
    else:
        level = "ok"
    return Verdict(level, before, after, warn, fail)
