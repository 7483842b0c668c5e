"""kubernetes-core-v1-namespace-require-pod-security-labels: every namespace the stack creates
says which Pod Security Standard the API server enforces in it."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject, as_list, as_map

PREFIX = "pod-security.kubernetes.io/"
LEVELS = ("privileged", "baseline", "restricted")


def check(subject: Subject, context: Context) -> Iterator[str]:
    metadata = as_map(subject.props.get("metadata"))
    name = str(metadata.get("name") or subject.name)
    labels = as_map(metadata.get("labels"))
    enforce = labels.get(f"{PREFIX}enforce")
    if enforce not in LEVELS:
        yield f"Namespace {name} has no {PREFIX}enforce label of {', '.join(LEVELS)}"
        return
    if not labels.get(f"{PREFIX}enforce-version"):
        yield (f"Namespace {name} does not pin {PREFIX}enforce-version (the standard would "
               "change with the control plane)")
    privileged = set(as_list(context.settings["privilegedNamespaces"]))
    if enforce == "privileged":
        if name not in privileged:
            yield (f"Namespace {name} enforces privileged; only "
                   f"{', '.join(sorted(privileged))} may")
        for mode in ("warn", "audit"):
            if labels.get(f"{PREFIX}{mode}") not in ("baseline", "restricted"):
                yield (f"Namespace {name} enforces privileged without {PREFIX}{mode} at "
                       "baseline or restricted")
    if name in as_list(context.settings["restrictedNamespaces"]) and enforce != "restricted":
        yield f"Namespace {name} enforces {enforce}, not restricted"


RULE = Rule(
    name="kubernetes-core-v1-namespace-require-pod-security-labels",
    description="Namespaces carry Pod Security Admission labels: restricted for serving, "
                "privileged only where the node agents need it, and then warned and audited at "
                "baseline.",
    severity="high",
    rationale="Pod Security Admission refuses privileged pods, host namespaces and host paths "
              "in the cluster, whoever applies them; an unlabelled namespace on EKS admits "
              "everything.",
    remediation="Label the Namespace with pod-security.kubernetes.io/enforce (and "
                "enforce-version, warn, audit) through pod_security_labels in "
                "infra/components/admission.py.",
    resource_types=("kubernetes:core/v1:Namespace",),
    check_resource=check,
    config_schema={
        "privilegedNamespaces": {"type": "array", "items": {"type": "string"},
                                 "default": ["gpu-operator", "node-exporter"],
                                 "description": "namespaces that may enforce privileged"},
        "restrictedNamespaces": {"type": "array", "items": {"type": "string"},
                                 "default": ["aiinfra"],
                                 "description": "namespaces that must enforce restricted"}},
    tags=("security", "gpu"),
)
