"""Data the program sizes and checks by: instance classes (``infra/data/instances.yaml``) and
EKS version support windows (``infra/data/eks-versions.yaml``)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

DATA = Path(__file__).parent / "data" / "instances.yaml"
EKS_VERSIONS = Path(__file__).parent / "data" / "eks-versions.yaml"


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


class EksVersion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    released: date
    end_of_standard: date
    end_of_extended: date


class EksVersions(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: date
    source: str
    versions: dict[str, EksVersion]


@lru_cache(maxsize=1)
def eks_versions() -> EksVersions:
    return EksVersions.model_validate(yaml.safe_load(EKS_VERSIONS.read_text()))
