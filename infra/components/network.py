"""VPC over N AZs: public and private subnets, NAT (one, or one per AZ), S3/ECR endpoints."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.base import child

# Image pulls (ECR) and IRSA token exchanges (STS). No CloudWatch Logs endpoint: nothing in the
# cluster ships logs there (control-plane logs go from EKS itself).
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts")


@dataclass(frozen=True)
class NetworkArgs:
    name: str
    cidr: str
    zones: list[str]
    nat_per_az: bool
    region: str
    tags: dict[str, str]
    cluster_name: str


class Network(pulumi.ComponentResource):
    def __init__(self, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:network:Network", f"{args.name}-network", None, opts)
        if len(args.zones) < 2:
            raise ValueError("the network needs at least 2 availability zones")
        tags = args.tags
        # Split the VPC in 2 × zones blocks: small public ones, large private ones (nodes, pods).
        network = ipaddress.ip_network(args.cidr)
        halves = list(network.subnets(prefixlen_diff=1))
        private_blocks = list(halves[0].subnets(prefixlen_diff=2))
        public_blocks = list(list(halves[1].subnets(prefixlen_diff=3))[0].subnets(prefixlen_diff=2))

        self.vpc = aws.ec2.Vpc(f"{args.name}-vpc", cidr_block=args.cidr,
                               enable_dns_hostnames=True, enable_dns_support=True,
                               tags={**tags, "Name": f"{args.name}-vpc"}, opts=child(self))
        igw = aws.ec2.InternetGateway(f"{args.name}-igw", vpc_id=self.vpc.id,
                                      tags={**tags, "Name": f"{args.name}-igw"},
                                      opts=child(self))
        public_rt = aws.ec2.RouteTable(
            f"{args.name}-public", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{args.name}-public"}, opts=child(self))

        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        self.nat_gateways: list[aws.ec2.NatGateway] = []
        private_route_tables = []
        for index, zone in enumerate(args.zones):
            public = aws.ec2.Subnet(
                f"{args.name}-public-{zone}", vpc_id=self.vpc.id,
                cidr_block=str(public_blocks[index]), availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{args.name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                opts=child(self))
            aws.ec2.RouteTableAssociation(f"{args.name}-public-{zone}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=child(self))
            self.public_subnets.append(public)
            if index == 0 or args.nat_per_az:
                eip = aws.ec2.Eip(f"{args.name}-nat-{zone}", domain="vpc",
                                  tags={**tags, "Name": f"{args.name}-nat-{zone}"},
                                  opts=child(self))
                self.nat_gateways.append(aws.ec2.NatGateway(
                    f"{args.name}-nat-{zone}", allocation_id=eip.id, subnet_id=public.id,
                    tags={**tags, "Name": f"{args.name}-nat-{zone}"},
                    opts=child(self, depends_on=[igw])))
            nat = self.nat_gateways[-1]
            private = aws.ec2.Subnet(
                f"{args.name}-private-{zone}", vpc_id=self.vpc.id,
                cidr_block=str(private_blocks[index]), availability_zone=zone,
                tags={**tags, "Name": f"{args.name}-private-{zone}",
                      "kubernetes.io/role/internal-elb": "1",
                      f"kubernetes.io/cluster/{args.cluster_name}": "shared"},
                opts=child(self))
            route_table = aws.ec2.RouteTable(
                f"{args.name}-private-{zone}", vpc_id=self.vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0",
                                                    nat_gateway_id=nat.id)],
                tags={**tags, "Name": f"{args.name}-private-{zone}"}, opts=child(self))
            aws.ec2.RouteTableAssociation(f"{args.name}-private-{zone}", subnet_id=private.id,
                                          route_table_id=route_table.id, opts=child(self))
            self.private_subnets.append(private)
            private_route_tables.append(route_table)

        # Image pulls and model downloads stay off the NAT (its per-GB charge) via endpoints.
        aws.ec2.VpcEndpoint(
            f"{args.name}-s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[rt.id for rt in private_route_tables],
            tags={**tags, "Name": f"{args.name}-s3"}, opts=child(self))
        self.endpoint_sg = aws.ec2.SecurityGroup(
            f"{args.name}-endpoints", vpc_id=self.vpc.id,
            description="HTTPS from the VPC to interface endpoints",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.cidr],
                description="HTTPS from inside the VPC")],
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                description="responses")],
            tags={**tags, "Name": f"{args.name}-endpoints"}, opts=child(self))
        for service in INTERFACE_ENDPOINTS:
            aws.ec2.VpcEndpoint(
                f"{args.name}-{service.replace('.', '-')}", vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface", private_dns_enabled=True,
                subnet_ids=[s.id for s in self.private_subnets],
                security_group_ids=[self.endpoint_sg.id],
                tags={**tags, "Name": f"{args.name}-{service}"}, opts=child(self))

        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.register_outputs({"vpcId": self.vpc.id,
                               "privateSubnetIds": self.private_subnet_ids})
