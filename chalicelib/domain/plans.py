"""The plan catalogue (SPEC "Billing"): allotments, prices, overage rates and the credits volume rate.

Money is exact: prices in integer USD (seed 003 writes `planPriceUsd: 3000`),
overage rates as Decimal USD per delta. Stripe price ids are mapped in settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from chalicelib.domain.amounts import plain
from chalicelib.domain.errors import ValidationError


@dataclass(frozen=True)
class Plan:
    tier: str
    monthly_allotment: int | None  # None: custom (enterprise)
    price_usd: int | None
    overage_usd: Decimal | None  # per delta beyond the allotment; None: no overage (hard cap)
    hard_cap: bool = False
    self_serve: bool = True
    credits_per_delta: int = 1  # under credits billing

    def overage_count(self, consumed: int) -> int:
        if self.monthly_allotment is None:
            return 0
        return max(0, consumed - self.monthly_allotment)

    def overage_charges_usd(self, consumed: int) -> Decimal:
        if self.overage_usd is None:
            return Decimal(0)
        return plain(self.overage_count(consumed) * self.overage_usd)

    def remaining(self, consumed: int) -> int | None:
        if self.monthly_allotment is None:
            return None
        return max(0, self.monthly_allotment - consumed)

    @property
    def overage_rate_label(self) -> str | None:
        """Seed 003's webhook form: ``$0.010/delta``."""
        return None if self.overage_usd is None else f"${self.overage_usd:.3f}/delta"


PLANS: dict[str, Plan] = {
    "free": Plan("free", 100, 0, None, hard_cap=True, self_serve=False),
    "pilot": Plan("pilot", 10_000, 1_000, Decimal("0.020")),
    "starter": Plan("starter", 100_000, 3_000, Decimal("0.012")),
    "growth": Plan("growth", 500_000, 8_000, Decimal("0.010")),
    "scale": Plan("scale", 2_000_000, 15_000, Decimal("0.008")),
    "enterprise": Plan("enterprise", None, None, None, self_serve=False),
}


@dataclass(frozen=True)
class VolumeRate:
    """Credits billing's actual cost (SPEC "Billing": the reservation is the estimate, the settlement the
    actual cost). Each accepted delta reserves ``credits_per_delta``; how many deltas are sealed together
    is known only when the verifier seals them. A seal holding at least ``min_deltas`` credit-billed deltas
    of one tenant environment costs ``percent`` % of what they reserved, rounded up to a whole credit; the
    rest is released. Smaller seals cost exactly their reservation. Integers only, and never more than
    was reserved."""

    min_deltas: int
    percent: int

    def charge(self, reserved: int, deltas: int) -> int:
        """The credits a seal of ``deltas`` credit-billed deltas that reserved ``reserved`` settles."""
        if deltas < self.min_deltas:
            return reserved
        return -(-reserved * self.percent // 100)


# 40: the verifier fills a seal up to 90 deltas, or fewer when they name many customers — never fewer
# than 46 while more are waiting (services/verification.py, MAX_SEAL_WRITES). So a submitted batch of
# 100, verified together, always has a seal that earns the rate, however many customers it names.
CREDITS_VOLUME_RATE = VolumeRate(min_deltas=40, percent=90)


def plan_for(tier: str) -> Plan:
    try:
        return PLANS[tier]
    except KeyError:
        raise ValidationError(f"unknown plan '{tier}'", field="plan") from None
