"""The cluster's ValidatingAdmissionPolicies, evaluated offline on the rendered objects.

What the API server does on CREATE (admissionregistration.k8s.io/v1): a binding selects a
policy; the policy's ``matchConstraints.resourceRules`` and the binding's
``matchResources.namespaceSelector`` pick the objects; every ``matchConditions`` entry must
hold; ``variables`` are bound under ``variables``; each ``validations`` expression must be
true, and an evaluation error counts as a refusal under ``failurePolicy: Fail``. The CEL comes
from the rendered objects themselves, so the offline verdict is the cluster's by construction.
cel-python (``celpy``) evaluates it, with RE2 behind ``matches`` as in Kubernetes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import celpy

from policies.core import Stack, Subject, as_list, as_map, is_list

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
NAMESPACE = "kubernetes:core/v1:Namespace"
NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
# The engine's stand-ins for values a preview does not know yet (pulumi_policy.proxy): an
# object holding one is judged once it is known (``pulumi up`` runs the pack again).
UNKNOWNS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff"})
_ENV = celpy.Environment()


class Refusal(NamedTuple):
    policy: str
    message: str


def api_group_version_kind(type_token: str) -> tuple[str, str, str] | None:
    """``kubernetes:apps/v1:Deployment`` -> ("apps", "v1", "Deployment"); core is ""."""
    provider, _, rest = type_token.partition(":")
    group_version, _, kind = rest.partition(":")
    if provider != "kubernetes" or "/" not in group_version or not kind:
        return None
    group, version = group_version.rsplit("/", 1)
    return ("" if group == "core" else group), version, kind


def resource_of(kind: str) -> str:
    """The plural resource name the API serves a kind under (the kinds policies match)."""
    lower = kind.lower()
    return lower + ("es" if lower.endswith("s") else "s")


def manifest(subject: Subject) -> dict[str, Any] | None:
    gvk = api_group_version_kind(subject.type)
    if gvk is None:
        return None
    group, version, kind = gvk
    body = _json(subject.props)
    body.setdefault("apiVersion", f"{group}/{version}" if group else version)
    body.setdefault("kind", kind)
    return body


@lru_cache(maxsize=512)
def _program(expression: str) -> celpy.Runner:
    return _ENV.program(_ENV.compile(expression))


def evaluate(expression: str, activation: Mapping[str, Any]) -> Any:
    """One CEL expression; raises ``celpy.CELEvalError`` (or a parse error) on failure."""
    result = _program(expression).evaluate(dict(activation))
    if isinstance(result, celpy.CELEvalError):
        raise result
    return result


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions); an empty one matches all."""
    selector = as_map(selector)
    for key, value in as_map(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in map(as_map, as_list(selector.get("matchExpressions"))):
        key, operator = expression.get("key"), expression.get("operator")
        values = as_list(expression.get("values"))
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _rule_matches(rule: Mapping[str, Any], group: str, version: str, resource: str,
                  operation: str) -> bool:
    def has(field: str, value: str) -> bool:
        listed = as_list(rule.get(field))
        return "*" in listed or value in listed

    return (has("apiGroups", group) and has("apiVersions", version)
            and has("resources", resource) and has("operations", operation))


def namespace_labels(stack: Stack) -> dict[str, dict[str, str]]:
    """Namespace name -> labels, as the API server sees them (the name label included)."""
    found = {}
    for subject in stack.of_type(NAMESPACE):
        metadata = as_map(subject.props.get("metadata"))
        name = str(metadata.get("name") or subject.name)
        found[name] = {**as_map(metadata.get("labels")), NAME_LABEL: name}
    return found


def matches(policy: Mapping[str, Any], binding: Mapping[str, Any], body: Mapping[str, Any],
            namespaces: Mapping[str, Mapping[str, str]], operation: str = "CREATE") -> bool:
    group, _, version = str(body.get("apiVersion", "")).rpartition("/")
    resource = resource_of(str(body.get("kind", "")))
    constraints = as_map(as_map(policy.get("spec")).get("matchConstraints"))
    if not any(_rule_matches(rule, group, version, resource, operation)
               for rule in map(as_map, as_list(constraints.get("resourceRules")))):
        return False
    if any(_rule_matches(rule, group, version, resource, operation)
           for rule in map(as_map, as_list(constraints.get("excludeResourceRules")))):
        return False
    namespace = str(as_map(body.get("metadata")).get("namespace") or "default")
    labels = namespaces.get(namespace, {NAME_LABEL: namespace})
    resources = as_map(as_map(binding.get("spec")).get("matchResources"))
    return all(selector_matches(selector, labels) for selector in (
        constraints.get("namespaceSelector"), resources.get("namespaceSelector")))


def _activation(body: Mapping[str, Any], operation: str) -> dict[str, Any]:
    metadata = as_map(body.get("metadata"))
    group, _, version = str(body.get("apiVersion", "")).rpartition("/")
    request = {"operation": operation, "name": metadata.get("name", ""),
               "namespace": metadata.get("namespace", ""),
               "kind": {"group": group, "version": version, "kind": body.get("kind", "")}}
    return {"object": celpy.json_to_cel(_json(body)), "oldObject": celpy.json_to_cel(None),
            "request": celpy.json_to_cel(request), "params": celpy.json_to_cel(None)}


def _json(value: Any) -> Any:
    """Plain JSON data: CrossGuard's proxies hand out their data under ``__target`` (reading
    through them raises on an unknown value), mocks hand tuples."""
    if isinstance(value, Mapping) or is_list(value):
        with contextlib.suppress(KeyError, TypeError, IndexError):
            value = value["__target"]
    if isinstance(value, Mapping):
        return {str(key): _json(item) for key, item in value.items()}
    if is_list(value):
        return [_json(item) for item in value]
    return value


def unknown(value: Any) -> bool:
    if isinstance(value, str):
        return value in UNKNOWNS
    if isinstance(value, Mapping):
        return any(unknown(item) for item in value.values())
    if is_list(value):
        return any(unknown(item) for item in value)
    return False


def refusals(policy: Mapping[str, Any], body: Mapping[str, Any],
             operation: str = "CREATE") -> list[Refusal]:
    """What the API server answers ``body`` under ``policy``: one refusal per failed
    validation (the policy's message), none when a match condition excludes it."""
    name = str(as_map(policy.get("metadata")).get("name"))
    spec = as_map(policy.get("spec"))
    activation = _activation(body, operation)
    try:
        for condition in map(as_map, as_list(spec.get("matchConditions"))):
            if not bool(evaluate(str(condition.get("expression")), activation)):
                return []
        variables: dict[str, Any] = {}
        for variable in map(as_map, as_list(spec.get("variables"))):
            activation["variables"] = celpy.celtypes.MapType(
                {celpy.celtypes.StringType(k): v for k, v in variables.items()})
            variables[str(variable.get("name"))] = evaluate(str(variable.get("expression")),
                                                            activation)
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in variables.items()})
    except Exception as exc:  # noqa: BLE001 - any evaluation error is failurePolicy's case
        return [Refusal(name, f"expression error ({_reason(exc)}), refused under "
                              f"failurePolicy {spec.get('failurePolicy', 'Fail')}")]
    found = []
    for validation in map(as_map, as_list(spec.get("validations"))):
        expression = str(validation.get("expression"))
        try:
            result = evaluate(expression, activation)
        except Exception as exc:  # noqa: BLE001
            found.append(Refusal(name, f"{validation.get('message') or expression} "
                                       f"(expression error: {_reason(exc)})"))
            continue
        if not isinstance(result, celpy.celtypes.BoolType):
            found.append(Refusal(name, f"{validation.get('message') or expression} "
                                       f"(the expression gave {type(result).__name__}, not bool)"))
        elif not bool(result):
            found.append(Refusal(name, str(validation.get("message") or
                                           f"failed expression: {expression}")))
    return found


def _reason(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    return str(args[0]) if args else type(exc).__name__


class Bound(NamedTuple):
    policy: Subject
    binding: Subject


def bound_policies(stack: Stack) -> tuple[list[Bound], list[Subject]]:
    """(policy, binding) pairs, and the policies no binding enforces with Deny."""
    policies = {str(as_map(p.props.get("metadata")).get("name")): p for p in stack.of_type(POLICY)}
    pairs, denied = [], set()
    for binding in stack.of_type(BINDING):
        spec = as_map(binding.props.get("spec"))
        name = str(spec.get("policyName"))
        if name in policies:
            pairs.append(Bound(policies[name], binding))
            if "Deny" in as_list(spec.get("validationActions")):
                denied.add(name)
    return pairs, [p for name, p in sorted(policies.items()) if name not in denied]


def admit(stack: Stack) -> list[tuple[Subject, Refusal]]:
    """Every rendered object the cluster's Deny-bound policies would refuse, and why."""
    pairs, _ = bound_policies(stack)
    namespaces = namespace_labels(stack)
    found = []
    for subject in stack.resources:
        body = manifest(subject)
        if body is None or subject.type in (POLICY, BINDING) or unknown(body):
            continue
        for pair in pairs:
            if "Deny" not in as_list(as_map(pair.binding.props.get("spec")).get(
                    "validationActions")):
                continue
            if matches(pair.policy.props, pair.binding.props, body, namespaces):
                found += [(subject, refusal) for refusal in refusals(pair.policy.props, body)]
    return found
