"""Spot, honestly: the share of spot hours that falls back to on-demand.

AWS's Spot Instance Advisor puts each instance type in an interruption-frequency band: the
share of its spot instances interrupted in the last month. When a spot node is reclaimed and
no spot capacity of an allowed type is found, the pod waits for the next NodePool by weight,
which is on-demand. The estimator does not know how long that lasts, so it *assumes* a share
of the node-hours runs on-demand instead of spot, and says so on the line:

    band    <5%    5-10%   10-15%   15-20%   >20%
    share   2.5%   7.5%    12.5%    17.5%    25%

(the band's midpoint; 25% for the open-ended top band). Those hours are priced at the same
instance type's on-demand rate. The usage file overrides the share per NodePool or node group
(``spot_on_demand_share: 0.1``), e.g. with the share measured from Karpenter's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.cost.catalogue import Catalogue

ON_DEMAND_SHARE_BY_BAND = {"<5%": 0.025, "5-10%": 0.075, "10-15%": 0.125, "15-20%": 0.175,
                           ">20%": 0.25}
USAGE_KEY = "spot_on_demand_share"


@dataclass(frozen=True)
class SpotPrice:
    """One instance type's spot hour with its on-demand fallback folded in."""

    instance_type: str
    spot: float
    on_demand: float
    share: float             # of the hours on on-demand
    basis: str               # where the share comes from

    @property
    def hourly(self) -> float:
        return (1 - self.share) * self.spot + self.share * self.on_demand

    def describe(self) -> str:
        return (f"{self.share:.1%} of {self.instance_type} hours assumed on on-demand at "
                f"${self.on_demand:g}/h ({self.basis})")


def spot_price(catalogue: Catalogue, instance_type: str,
               override: float | None = None) -> SpotPrice | None:
    """The spot hour of ``instance_type`` with its fallback share; None when either price is
    missing (the line is then unpriced) or no share is known."""
    spot = catalogue.usd(f"ec2/spot/{instance_type}")
    on_demand = catalogue.usd(f"ec2/on-demand/{instance_type}")
    if spot is None or on_demand is None:
        return None
    if override is not None:
        return SpotPrice(instance_type, spot, on_demand, override,
                         f"usage file {USAGE_KEY}")
    advice = catalogue.spot_advisor.get(instance_type)
    if advice is None:
        return None
    return SpotPrice(instance_type, spot, on_demand, ON_DEMAND_SHARE_BY_BAND[advice.band],
                     f"Spot Advisor band {advice.band} interrupted a month, "
                     f"{advice.date.isoformat()}")


def price_keys(instance_type: str) -> list[str]:
    return [f"ec2/spot/{instance_type}", f"ec2/on-demand/{instance_type}"]
