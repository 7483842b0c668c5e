"""aws-rds-parametergroup-limit-memory-to-instance-ram: Postgres memory fits the instance."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._rds import evaluate
from policies.aws._types import RDS_INSTANCE, RDS_PARAMETER_GROUP
from policies.core import Context, Finding, Rule, Stack, Subject, as_list, as_map

KB = 1024
# parameter: (kB per unit, largest safe share of the instance's RAM)
LIMITS = {"shared_buffers": (8, 0.40), "effective_cache_size": (8, 0.90),
          "maintenance_work_mem": (1, 0.125), "autovacuum_work_mem": (1, 0.125)}
DEFAULT_MAX_CONNECTIONS = 100


def _values(group: Subject, memory_kb: int, vcpus: int) -> dict[str, int]:
    """Numeric parameters; formulas take DBInstanceClassMemory as the catalogue's nominal RAM
    (what RDS reports is a little less)."""
    values = {}
    for parameter in map(as_map, as_list(group.props.get("parameters"))):
        number = evaluate(str(parameter.get("value", "")), memory_bytes=memory_kb * KB,
                          vcpus=vcpus)
        if number is not None:
            values[str(parameter.get("name"))] = number
    return values


def _gib(kb: float) -> str:
    return f"{kb / KB / KB:.1f} GiB"


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    from infra.catalog import catalog  # noqa: PLC0415 - data, read once

    for instance in stack.of_type(RDS_INSTANCE):
        instance_class = str(instance.props.get("instanceClass"))
        for group in stack.referenced(instance, "parameterGroupName", RDS_PARAMETER_GROUP):
            spec = catalog().rds.get(instance_class)
            if spec is None:
                yield Finding(f"parameter group {group.name} cannot be checked: instance class "
                              f"{instance_class} is not in infra/data/instances.yaml", group)
                continue
            memory_kb = int(spec.memory_gib * KB * KB)
            values = _values(group, memory_kb, spec.vcpu)
            ram = f"the {spec.memory_gib:g} GiB of {instance_class}"
            for name, (unit_kb, share) in LIMITS.items():
                if name in values and values[name] * unit_kb > share * memory_kb:
                    used = values[name] * unit_kb
                    yield Finding(f"parameter group {group.name} sets {name} to {_gib(used)}, "
                                  f"{used / memory_kb:.0%} of {ram} "
                                  f"(limit {share * 100:g}%)", group)
            if "work_mem" in values:
                connections = values.get("max_connections", DEFAULT_MAX_CONNECTIONS)
                left = memory_kb - values.get("shared_buffers", 0) * 8
                if values["work_mem"] * connections > left:
                    yield Finding(f"parameter group {group.name} lets {connections} connections "
                                  f"use work_mem {values['work_mem']} kB each, "
                                  f"{_gib(values['work_mem'] * connections)} in all, more than the "
                                  f"{_gib(left)} left of {ram} after shared_buffers", group)


RULE = Rule(
    name="aws-rds-parametergroup-limit-memory-to-instance-ram",
    description="Postgres memory settings stay within safe shares of the instance's RAM.",
    severity="high",
    rationale="Memory settings past the instance's RAM make Postgres swap or get killed under "
              "load, and every connection may take work_mem per sort.",
    remediation="Compute the group from the instance class (infra/pgtune.py): shared_buffers "
                "<= 40%, effective_cache_size <= 90%, maintenance_work_mem <= 12.5% of RAM, "
                "work_mem x max_connections <= RAM - shared_buffers.",
    resource_types=(RDS_PARAMETER_GROUP,),
    check_stack=check,
    tags=("reliability", "performance"),
)
