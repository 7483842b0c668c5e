"""Kubernetes rules: workload hardening, resources, probes, images, GPUs, availability."""
