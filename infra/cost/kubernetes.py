"""Pricing of the Kubernetes objects that create AWS resources: load balancers for Services and
Ingresses, and EBS volumes for persistent volume claims and the kube-prometheus-stack release.
"""

from __future__ import annotations

import re

from infra.cost.model import Range
from infra.cost.pricer import PricerBase
from infra.render import Resource

_SIZE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>Ki|Mi|Gi|Ti|K|M|G|T)?i?B?\s*$")


def _gib(quantity: str | int | float | None) -> float | None:
    """A Kubernetes storage quantity in GiB (``200Gi`` → 200)."""
    if quantity is None:
        return None
    if isinstance(quantity, int | float):
        return float(quantity) / 2**30
    match = _SIZE.match(str(quantity))
    if not match:
        return None
    factor = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1, "Ti": 2**10, "K": 1e3 / 2**30,
              "M": 1e6 / 2**30, "G": 1e9 / 2**30, "T": 1e12 / 2**30, None: 1 / 2**30}
    return float(match["n"]) * factor[match["unit"]]


class KubernetesPricer(PricerBase):
    """Prices the AWS resources that Kubernetes controllers create for Kubernetes objects."""

    def ebs_type(self, storage_class: str | None) -> str | None:
        """The EBS volume type behind a storage class; None when it is not EBS (e.g. EFS)."""
        spec = self.storage_classes.get(storage_class or "")
        if spec is None:
            return storage_class or "unknown"
        if spec.get("provisioner") in ("ebs.csi.aws.com", "kubernetes.io/aws-ebs"):
            return (spec.get("parameters") or {}).get("type", "gp3")
        return None

    def helm_release(self, r: Resource) -> None:
        if r.inputs.get("chart") != "kube-prometheus-stack":
            return
        values = r.inputs.get("values") or {}
        for part, spec_key in (("prometheus", "prometheusSpec"),
                               ("alertmanager", "alertmanagerSpec")):
            spec = (values.get(part) or {}).get(spec_key) or {}
            claim = ((spec.get("storageSpec") or spec.get("storage") or {})
                     .get("volumeClaimTemplate") or {}).get("spec") or {}
            size = _gib(((claim.get("resources") or {}).get("requests") or {}).get("storage"))
            if size is None:
                continue
            replicas = float(spec.get("replicas", 1))
            volume_type = self.ebs_type(claim.get("storageClassName", "gp3"))
            if volume_type is None:
                continue
            self.add(r, f"{part}-storage",
                     f"{part} volume {size:g} GB {volume_type} × {replicas:g}",
                     "gb-month", Range.of(size * replicas), [f"ebs/storage/{volume_type}"])

    def k8s_service(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            return
        annotations = ((r.inputs.get("metadata") or {}).get("annotations") or {})
        kind = annotations.get("service.beta.kubernetes.io/aws-load-balancer-type", "")
        if kind in ("nlb", "external", "nlb-ip"):
            self.add(r, "hours", "network load balancer (no LCUs)", "hour",
                     self.monthly_hours(), ["elb/network/hour"])
        else:
            self.unpriced(r, "classic load balancer", "no price for classic load balancers")

    def k8s_ingress(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        annotations = ((r.inputs.get("metadata") or {}).get("annotations") or {})
        if spec.get("ingressClassName") == "alb" or \
                annotations.get("kubernetes.io/ingress.class") == "alb":
            self.add(r, "hours", "application load balancer (no LCUs)", "hour",
                     self.monthly_hours(), ["elb/application/hour"])

    def k8s_pvc(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        size = _gib(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
        volume_type = self.ebs_type(spec.get("storageClassName"))
        if volume_type is None:
            return  # not an EBS volume (an EFS claim is priced with its file system)
        if size is None:
            self.unpriced(r, "persistent volume", "no storage request")
            return
        self.add(r, "storage", f"{size:g} GB {volume_type}", "gb-month", Range.of(size),
                 [f"ebs/storage/{volume_type}"])
