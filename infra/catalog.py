"""The instance class catalogue (data in ``infra/data/instances.yaml``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

DATA = Path(__file__).parent / "data" / "instances.yaml"


class InstanceClass(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    vcpu: int
    memory_gib: float
    gpus: int = 0
    gpu: str | None = None
    gpu_memory_gib: float = 0


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: str
    source: str
    ec2: dict[str, InstanceClass]
    rds: dict[str, InstanceClass]
    elasticache: dict[str, InstanceClass]


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return Catalog.model_validate(yaml.safe_load(DATA.read_text()))
