"""A model's ``config.yaml``: typed, validated at load, with errors that say how to fix them.

Shapes follow Triton: when ``max_batch_size > 0`` the ``dims`` leave out the batch dimension,
which the server adds (as -1) in metadata; ``-1`` marks a variable dimension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serving.datatypes import DATATYPES
from serving.errors import ModelConfigError

Backend = Literal["auto", "eager", "compile", "int8", "tensorrt"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    name: str = Field(min_length=1)
    datatype: str
    dims: tuple[int, ...]

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        upper = value.upper()
        if upper not in DATATYPES:
            raise ValueError(f"datatype {value!r} is not one of {', '.join(DATATYPES)}")
        return upper

    @field_validator("dims")
    @classmethod
    def _valid_dims(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d == 0 or d < -1 for d in value):
            raise ValueError(f"dims {list(value)}: each must be a positive size or -1 (variable)")
        return value


class WarmupConfig(_Strict):
    enabled: bool = True
    batch_sizes: tuple[int, ...] | None = Field(
        None, description="Batch sizes run before the model is ready; default 1 and max."
    )


class ShapeRange(_Strict):
    """An input's dims (without the batch dimension) at the profile's min, opt and max."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


class TensorRTConfig(_Strict):
    opt_batch_size: int | None = Field(None, ge=1, description="Profile's optimal batch size")
    workspace_mib: int = Field(1024, ge=64)
    # Ranges for inputs with variable (-1) dims: the engine accepts only what it was built for.
    shapes: dict[str, ShapeRange] = Field(default_factory=dict)


class CacheConfig(_Strict):
    """Prediction caching; only for deterministic models (same inputs, same outputs)."""

    enabled: bool = False
    ttl_s: float = Field(300.0, gt=0, le=30 * 86400, description="How long a prediction is kept")


class ModelConfig(_Strict):
    name: str
    backend: Backend = "auto"
    precision: Precision = "fp32"
    max_batch_size: int = Field(8, ge=0, description="0 disables batching")
    max_queue_delay_ms: float = Field(2.0, ge=0)
    max_queue_size: int = Field(128, ge=1)
    default_timeout_ms: float = Field(0, ge=0, description="0 = no timeout")
    latency_budget_ms: float = Field(
        0, ge=0, description="Refuse a request without a timeout when it is predicted to be "
        "answered later than this (0 = none); it is never cut once admitted")
    instance_count: int = Field(1, ge=1, le=16)
    version_policy: Literal["latest", "all"] = "latest"
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    warmup: WarmupConfig = WarmupConfig()
    tensorrt: TensorRTConfig = TensorRTConfig()
    cache: CacheConfig = CacheConfig()

    @model_validator(mode="after")
    def _coherent(self) -> ModelConfig:
        for kind, specs in (("input", self.inputs), ("output", self.outputs)):
            names = [s.name for s in specs]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(dupes)}")
        if (self.max_batch_size == 0 and self.max_queue_delay_ms
                and "max_queue_delay_ms" in self.model_fields_set):
            raise ValueError(
                "max_queue_delay_ms is set but max_batch_size is 0 (batching off): "
                "set max_batch_size > 0 or drop max_queue_delay_ms"
            )
        texts = [s.name for s in (*self.inputs, *self.outputs) if s.datatype == "BYTES"]
        if texts and self.backend in ("tensorrt", "int8"):
            raise ValueError(f"backend {self.backend} takes tensors only, and "
                             f"{', '.join(texts)} is BYTES: use backend eager (or auto)")
        for spec in self.outputs:  # a List[str] has no shape of its own to check
            if spec.datatype == "BYTES" and -1 in spec.dims:
                raise ValueError(f"BYTES output '{spec.name}' needs fixed dims: the model "
                                 "returns a flat List[str], shaped by dims")
        self._check_shape_ranges()
        if self.backend == "tensorrt" and self.precision == "int8":
            raise ValueError("precision int8 with backend tensorrt: TensorRT int8 needs "
                             "calibration data, which is not supported; use fp16 or bf16 on "
                             "the GPU, or backend int8 on the CPU")
        if self.backend == "int8" and self.precision not in ("int8", "fp32"):
            raise ValueError("backend int8 quantises from fp32: set precision: int8 (or fp32)")
        if self.backend in ("eager", "compile") and self.precision == "int8":
            raise ValueError(
                f"precision int8 with backend {self.backend}: use backend: int8 (or auto), "
                "which quantises Linear layers dynamically"
            )
        for size in self.warmup_batch_sizes:
            if self.max_batch_size and size > self.max_batch_size:
                raise ValueError(
                    f"warmup batch size {size} is over max_batch_size {self.max_batch_size}: "
                    "lower warmup.batch_sizes or raise max_batch_size"
                )
        opt = self.tensorrt.opt_batch_size
        if opt is not None and self.max_batch_size and opt > self.max_batch_size:
            raise ValueError(
                f"tensorrt.opt_batch_size {opt} is over max_batch_size {self.max_batch_size}"
            )
        return self

    def _check_shape_ranges(self) -> None:
        inputs = {spec.name: spec for spec in self.inputs}
        for name, ranges in self.tensorrt.shapes.items():
            spec = inputs.get(name)
            if spec is None:
                raise ValueError(f"tensorrt.shapes names no input '{name}'")
            n = len(spec.dims)
            if not len(ranges.min) == len(ranges.opt) == len(ranges.max) == n:
                raise ValueError(f"tensorrt.shapes.{name}: min, opt and max need {n} dims each")
            for index, (dim, low, opt, high) in enumerate(
                    zip(spec.dims, ranges.min, ranges.opt, ranges.max, strict=True)):
                if not 1 <= low <= opt <= high:
                    raise ValueError(f"tensorrt.shapes.{name}: need min <= opt <= max in "
                                     "every dim (all at least 1)")
                if dim != -1 and not low == opt == high == dim:
                    raise ValueError(f"tensorrt.shapes.{name}: dim {index} is fixed at {dim}")

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0

    @property
    def warmup_batch_sizes(self) -> tuple[int, ...]:
        if not self.warmup.enabled:
            return ()
        if self.warmup.batch_sizes is not None:
            return self.warmup.batch_sizes
        return (1, self.max_batch_size) if self.max_batch_size > 1 else (1,)

    def full_shape(self, spec: TensorSpec) -> list[int]:
        """The tensor's shape as the protocol shows it (batch dimension as -1)."""
        return [-1, *spec.dims] if self.batching else list(spec.dims)


_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "literal_error": "use one of the allowed values",
}


def _format_error(path: Path, error: ValidationError) -> str:
    items = error.errors()
    # A tuple whose only item failed also reports "too short": the item's error says it all.
    items = [i for i in items if i["type"] != "too_short" or not any(
        len(o["loc"]) > len(i["loc"]) and o["loc"][:len(i["loc"])] == i["loc"] for o in items)]
    lines = [f"{path}: invalid model config ({len(items)} problem(s)):"]
    for item in items:
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(item["type"])
        lines.append(f"  - {where}: {message}" + (f" ({hint})" if hint else ""))
    return "\n".join(lines)


def load_model_config(path: Path, *, model_name: str) -> ModelConfig:
    """Read and validate ``path``; the directory name is the model name."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ModelConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    declared = raw.setdefault("name", model_name)
    if declared != model_name:
        raise ModelConfigError(
            f"{path}: name {declared!r} differs from its directory {model_name!r}; "
            "rename one or drop `name:`"
        )
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ModelConfigError(_format_error(path, exc)) from None
