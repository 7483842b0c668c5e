"""Availability zones chosen from what the region offers (review row #29)."""

from __future__ import annotations

import pytest

from infra.config import GpuPool
from infra.zones import ZoneError, choose_zones

NAMES = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e"]
IDS = ["use1-az6", "use1-az3", "use1-az1", "use1-az2", "use1-az4"]
SPOT = GpuPool(name="spot", capacity="spot", max_nodes=4,
               instance_types=["g6.xlarge", "g6.2xlarge", "g5.xlarge"])
RESERVED = GpuPool(name="resv", capacity="reserved", reserved_term="1yr",
                   create_capacity_reservation=True, reserved_nodes=2, max_nodes=3,
                   instance_types=["g6.2xlarge"])


def offered(**zones: list[str]) -> dict[str, list[str]]:
    everything = ["g6.xlarge", "g6.2xlarge", "g5.xlarge", "m7i.large"]
    return {name: zones.get(name.replace("-", "_"), everything) for name in NAMES}


def test_eks_unsupported_zone_ids_are_left_out() -> None:
    assert choose_zones(NAMES, IDS, offered(), [SPOT], 3) == [
        "us-east-1a", "us-east-1c", "us-east-1d"]


def test_a_zone_without_a_pools_types_is_left_out() -> None:
    zones = choose_zones(NAMES, IDS, offered(us_east_1c=["m7i.large"]), [SPOT], 3)
    assert zones == ["us-east-1a", "us-east-1d", "us-east-1e"]


def test_the_reserved_pools_zone_comes_first() -> None:
    zones = choose_zones(NAMES, IDS, offered(us_east_1a=["g6.xlarge", "g5.xlarge"]),
                         [SPOT, RESERVED], 3)
    assert zones[0] == "us-east-1c"  # the first zone that offers g6.2xlarge
    assert "us-east-1a" in zones


def test_too_few_zones_says_which_were_left_out_and_why() -> None:
    with pytest.raises(ZoneError, match=r"asks for 4 .* only 3 fit .*us-east-1b \(use1-az3: "
                       r"not supported by EKS\); us-east-1e \(no instance type of pool\(s\) "
                       r"spot\)"):
        choose_zones(NAMES, IDS, offered(us_east_1e=["m7i.large"]), [SPOT], 4)


def test_the_program_uses_the_providers_zones(graphs) -> None:
    subnets = {r.inputs["availabilityZone"] for r in graphs["prod"].of_type(
        "aws:ec2/subnet:Subnet")}
    # The mocked region lists us-east-1a..f with us-east-1b as use1-az3 (see infra/render.py).
    assert subnets == {"us-east-1a", "us-east-1c", "us-east-1d"}
