"""The CrossGuard adapter: each rule as a ``ResourceValidationPolicy`` or
``StackValidationPolicy`` over the engine's resources.

Nothing here starts the analyzer: ``policies/__main__.py`` passes ``pack_arguments()`` to
``PolicyPack``, which serves them over gRPC and blocks; tests call ``policy.validate`` directly.
The environment a rule sees is the policy config's ``environment``, else the stack's
``aiinfra:environment`` (the engine hands the pack the stack config), else the stack name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.core import ENVIRONMENTS, Context, NotApplicable, Rule, Stack, Subject
from policies.enforcement import level_of, pack_config, settings_of
from policies.registry import all_rules
from policies.waivers import Waivers, judge, load_waivers, today_utc

PACK_NAME = "aiinfra"
ENVIRONMENT_PROPERTY = {"environment": {
    "type": "string", "enum": list(ENVIRONMENTS),
    "description": "dev, staging or prod (default: the stack's aiinfra:environment)"}}


def stack_environment() -> str | None:
    """``aiinfra:environment`` of the stack the engine is previewing, if it says."""
    import pulumi  # noqa: PLC0415 - the analyzer process has the stack's config

    return pulumi.Config("aiinfra").get("environment")


def stack_name() -> str:
    import pulumi  # noqa: PLC0415

    return pulumi.get_stack()


def waivers() -> Waivers:
    """The repository's waivers, read again whenever the file changes."""
    from policies import waivers as module  # noqa: PLC0415 - its WAIVERS_FILE, as it is now

    path = module.WAIVERS_FILE
    stat = path.stat() if path.is_file() else None
    return _waivers(path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@lru_cache(maxsize=4)
def _waivers(path: Path, mtime_ns: int, size: int) -> Waivers:
    return load_waivers(path)


def _context(config: Mapping[str, Any] | None, *, stack_config: Any = None) -> Context:
    config = dict(config or {})
    environment = config.pop("environment", None) or stack_environment() or stack_name()
    config.pop("enforcementLevel", None)
    return Context(environment=environment, stack=stack_name(), settings=config,
                   config=stack_config, waivers=waivers(), today=today_utc())


def _report(rule: Rule, findings, context: Context, report_violation: ReportViolation,
            urn_of) -> None:
    """Waived findings are left out (CrossGuard has no waived state); an expired waiver's
    finding is reported with it. The verdict is ``judge``'s, as in ``aiinfra check``."""
    for judged in judge(rule, findings, context.waivers, stack=context.stack,
                        today=context.today or today_utc()):
        if judged.reported:
            report_violation(judged.message(rule), urn_of(judged.finding))


def _typed_stack_config() -> Any:
    """The stack's validated ``StackConfig`` (for the budget), or None outside a stack."""
    from infra.config import ConfigError, read_pulumi_config  # noqa: PLC0415

    try:
        return read_pulumi_config()
    except (ConfigError, ValueError):
        return None


def _plain(value: Any) -> Any:
    """The data behind a property proxy (unknown values stay as the engine's sentinels)."""
    if isinstance(value, Mapping | Sequence) and not isinstance(value, str | bytes):
        try:
            inner = value["__target"]  # the proxies hand out their target under this key
        except (KeyError, TypeError, IndexError):
            inner = value
        if isinstance(inner, Mapping):
            return {key: _plain(item) for key, item in inner.items()}
        return [_plain(item) for item in inner]
    return value


def _graph(resources: list[Subject], config: Any) -> Any:
    """The engine's resources as the ``infra.render.Graph`` the cost engine prices."""
    if config is None:
        return None
    import pulumi  # noqa: PLC0415

    from infra.render import Graph, Resource  # noqa: PLC0415

    return Graph(pulumi.get_stack(), config, [
        Resource(s.type, s.name, s.parent, _plain(s.props), urn=s.urn) for s in resources])


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        subject = Subject(args.resource_type, args.name, args.props, urn=args.urn)
        context = _context(args.get_config())
        try:
            findings = rule.findings(subject, context)
        except NotApplicable as exc:
            args.not_applicable(exc.reason)
            return
        _report(rule, findings, context, report_violation, lambda finding: args.urn)

    return ResourceValidationPolicy(validate=validate, **_metadata(rule))


def stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        subjects = [Subject(r.resource_type, r.name, r.props, urn=r.urn,
                            parent=r.parent.name if r.parent else None,
                            references={prop: tuple(d.name for d in deps)
                                        for prop, deps in r.property_dependencies.items()})
                    for r in args.resources]
        config = _typed_stack_config()
        stack = Stack(tuple(subjects), render=lambda: _graph(subjects, config))
        context = _context(args.get_config(), stack_config=config)
        try:
            findings = rule.findings(stack, context)
        except NotApplicable as exc:
            args.not_applicable(exc.reason)
            return
        _report(rule, findings, context, report_violation,
                lambda finding: finding.resource.urn if finding.resource else None)

    return StackValidationPolicy(validate=validate, **_metadata(rule))


def _metadata(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": EnforcementLevel(rule.enforcement_level),
        "config_schema": PolicyConfigSchema(
            properties={**ENVIRONMENT_PROPERTY,
                        **{key: dict(spec) for key, spec in rule.config_schema.items()}}),
        "severity": Severity(rule.severity),
        "tags": list(rule.tags),
        "remediation_steps": rule.remediation,
        "url": rule.url,
    }


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [stack_policy(rule) if rule.is_stack_rule else resource_policy(rule)
            for rule in all_rules()]


def initial_config(environment: str) -> dict[str, Any]:
    """Each rule's level (and settings) in ``environment``, from policies/config/."""
    config = pack_config(environment)
    return {rule.name: {"enforcementLevel": EnforcementLevel(level_of(rule, config)),
                        **settings_of(rule, config)}
            for rule in all_rules()}


def pack_arguments(environment: str | None = None) -> dict[str, Any]:
    """``PolicyPack`` keyword arguments; levels follow the stack's environment when known
    (``--policy-pack-config`` still overrides them)."""
    environment = environment or stack_environment()
    return {
        "name": PACK_NAME,
        "description": "aiinfra: EKS and its system node group, Karpenter GPU NodePools and "
                       "EC2NodeClasses, Postgres, Redis, S3/ECR and serving workloads, plus "
                       "the stack's cost budget.",
        "policies": policies(),
        "enforcement_level": EnforcementLevel.MANDATORY,
        "initial_config": initial_config(environment) if environment else None,
    }
