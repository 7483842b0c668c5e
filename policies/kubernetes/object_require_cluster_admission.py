"""kubernetes-object-require-cluster-admission: what the cluster's own admission would refuse.

The rendered ValidatingAdmissionPolicies (``infra/components/admission.py``) are evaluated on
the rendered objects with the expressions the API server will run (``_admission.py``): a
refusal here is a failed ``pulumi up`` there. No waiver lifts it, since none would reach the
API server, and its level is fixed: the cluster refuses in every environment.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Finding, NotApplicable, Rule, Stack
from policies.kubernetes._admission import POLICY, admit, bound_policies
from policies.kubernetes._pods import workload


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    if not stack.of_type(POLICY):
        raise NotApplicable("the stack renders no ValidatingAdmissionPolicy")
    _, unenforced = bound_policies(stack)
    for policy in unenforced:
        yield Finding(f"ValidatingAdmissionPolicy {policy.props['metadata']['name']} has no "
                      "binding with validationActions Deny: the cluster does not enforce it",
                      policy)
    for subject, refusal in admit(stack):
        yield Finding(f"{workload(subject)}: refused by ValidatingAdmissionPolicy "
                      f"{refusal.policy}: {refusal.message}", subject)


RULE = Rule(
    name="kubernetes-object-require-cluster-admission",
    description="Every rendered object passes the ValidatingAdmissionPolicies the stack installs "
                "in its cluster.",
    severity="high",
    rationale="The API server refuses what these CEL rules refuse, whoever applies it; finding "
              "it here keeps a refused object from failing the rollout half-way.",
    remediation="Change the object as the message says (the policies and their reasons are in "
                "infra/components/admission.py); bind every policy with validationActions Deny.",
    check_stack=check,
    fixed_level=True,
    waivable=False,
    tags=("admission", "gpu", "security", "reliability"),
)
