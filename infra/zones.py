"""Which availability zones a stack uses: chosen from what the account's region offers.

AZ letters map to different physical zones in each account, so ``us-east-1a`` is not a zone
to hard-code: the program asks the provider for the region's zones (names and zone IDs),
leaves out the zone IDs EKS does not place control-plane subnets in, and keeps the zones
that offer an instance type of every GPU pool (a reserved pool's only type in the first
zone, where its capacity reservation lives).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from infra.config import GpuPool

# Zone IDs EKS refuses for cluster subnets (UnsupportedAvailabilityZoneException; the EKS
# user guide, "Subnet requirements and considerations").
EKS_UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3", "usw1-az2", "cac1-az3"})


class ZoneError(ValueError):
    """The region cannot give the stack the zones it asks for."""


def choose_zones(names: list[str], zone_ids: list[str], offerings: Mapping[str, Iterable[str]],
                 pools: list[GpuPool], count: int) -> list[str]:
    """``count`` zones, in the region's order, that EKS supports and where every GPU pool can
    launch; ``offerings`` maps a zone name to the instance types offered there."""
    offered = {zone: set(types) for zone, types in offerings.items()}
    usable, skipped = [], []
    for name, zone_id in zip(names, zone_ids, strict=True):
        if zone_id in EKS_UNSUPPORTED_ZONE_IDS:
            skipped.append(f"{name} ({zone_id}: not supported by EKS)")
            continue
        # A pool with a capacity reservation lives in one zone only (below).
        missing = [p.name for p in pools if not p.create_capacity_reservation
                   and not offered.get(name, set()) & set(p.instance_types)]
        if missing:
            skipped.append(f"{name} (no instance type of pool(s) {', '.join(missing)})")
            continue
        usable.append(name)
    reserved = [p for p in pools if p.create_capacity_reservation]
    for pool in reserved:  # its reservation is made in the first zone: put one that has it first
        first = next((z for z in usable if pool.instance_types[0] in offered.get(z, ())), None)
        if first is None:
            raise ZoneError(f"no zone offers {pool.instance_types[0]} for reserved pool "
                            f"{pool.name!r}")
        usable.remove(first)
        usable.insert(0, first)
    if len(usable) < count:
        raise ZoneError(f"the stack asks for {count} availability zones; only "
                        f"{len(usable)} fit ({', '.join(usable) or 'none'}); left out: "
                        f"{'; '.join(skipped)}")
    return usable[:count]
