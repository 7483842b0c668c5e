"""Kubernetes rules: workload hardening, resources, probes, images, GPUs, availability, and
Karpenter's GPU capacity (NodePools, EC2NodeClasses, its interruption queue)."""
