"""Pricing of the network: NAT gateways, public IPv4 addresses, VPC endpoints, load balancers."""

from __future__ import annotations

from infra.cost.model import Range
from infra.cost.pricer import PricerBase
from infra.render import Resource


class NetworkPricer(PricerBase):
    """Prices the VPC's billable parts and the load balancers declared as AWS resources."""

    def nat_gateway(self, r: Resource) -> None:
        self.add(r, "hours", "NAT gateway", "hour", self.monthly_hours(),
                 ["vpc/nat-gateway/hour"])
        self.add_usage(r, "data", "data processed", "gb", "vpc/nat-gateway/data",
                       "monthly_data_processed_gb")

    def eip(self, r: Resource) -> None:
        self.add(r, "hours", "public IPv4 address", "hour", self.monthly_hours(),
                 ["vpc/public-ipv4/hour"])

    def vpc_endpoint(self, r: Resource) -> None:
        kind = r.inputs.get("vpcEndpointType", "Gateway")
        service = str(r.inputs.get("serviceName", "")).removeprefix(
            f"com.amazonaws.{self.graph.config.region}.")
        if kind == "Gateway":
            return  # S3 and DynamoDB gateway endpoints are free
        if kind != "Interface":
            self.unpriced(r, f"{kind} endpoint", f"no price for {kind} endpoints")
            return
        azs = max(1, len(r.inputs.get("subnetIds") or []))
        self.add(r, "hours", f"interface endpoint {service}, {azs} AZ", "hour",
                 self.monthly_hours(azs), ["vpc/interface-endpoint/hour"])
        gb = self.usage_value(r, "monthly_data_processed_gb")
        if gb is not None:
            self.add(r, "data", "data processed", "gb", Range.of(gb),
                     ["vpc/interface-endpoint/data"])

    def load_balancer(self, r: Resource) -> None:
        kind = r.inputs.get("loadBalancerType", "application")
        self.add(r, "hours", f"{kind} load balancer (no LCUs)", "hour",
                 self.monthly_hours(), [f"elb/{kind}/hour"])
