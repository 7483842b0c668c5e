"""GPU plumbing on the nodes: the NVIDIA device plugin and the DCGM exporter."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.components.admission import GPU_NAMESPACE, pod_security_labels
from infra.components.base import k8s_child

DEVICE_PLUGIN_CHART = "0.17.0"
DCGM_EXPORTER_CHART = "4.1.1"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
ON_GPU_NODES = {"nvidia.com/gpu.present": "true"}


class GpuPlumbing(pulumi.ComponentResource):
    def __init__(self, name: str, provider: pulumi.ProviderResource,
                 depends_on: list[pulumi.Resource], *, pod_security_version: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:gpu:GpuPlumbing", name, None, opts)
        # The device plugin mounts the kubelet's device-plugin socket (hostPath) and DCGM
        # needs SYS_ADMIN: `privileged` here (as for node-exporter, and nowhere else the program
        # creates), warned and audited at `baseline` so that what else lands here is seen.
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": GPU_NAMESPACE, "labels": pod_security_labels(
                "privileged", version=pod_security_version, warn="baseline")},
            opts=k8s_child(self, provider))
        # The accelerated AMIs ship the driver and container toolkit, not the device plugin.
        k8s.helm.v3.Release(
            f"{name}-device-plugin", name="nvidia-device-plugin",
            namespace=namespace.metadata["name"], chart="nvidia-device-plugin",
            version=DEVICE_PLUGIN_CHART,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://nvidia.github.io/k8s-device-plugin"),
            values={"nodeSelector": ON_GPU_NODES, "tolerations": [GPU_TOLERATION],
                    "priorityClassName": "system-node-critical",
                    # Bottlerocket's NVIDIA AMIs run their own device plugin: a second one
                    # would register nvidia.com/gpu twice.
                    "affinity": {"nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{
                                "key": "aiinfra.io/ami-family", "operator": "NotIn",
                                "values": ["bottlerocket-nvidia"]}]}]}}}},
            opts=k8s_child(self, provider, depends_on=depends_on))
        k8s.helm.v3.Release(
            f"{name}-dcgm-exporter", name="dcgm-exporter",
            namespace=namespace.metadata["name"], chart="dcgm-exporter",
            version=DCGM_EXPORTER_CHART,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://nvidia.github.io/dcgm-exporter/helm-charts"),
            values={"nodeSelector": ON_GPU_NODES, "tolerations": [GPU_TOLERATION],
                    "serviceMonitor": {"enabled": True, "interval": "15s",
                                       "additionalLabels": {"release": "kube-prometheus-stack"}}},
            opts=k8s_child(self, provider, depends_on=depends_on))
        self.register_outputs({})
