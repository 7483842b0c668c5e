"""``config.yaml`` validation and model/version discovery in a ``ModelRepository``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serving.errors import ModelConfigError, ModelNotFound
from serving.repository import ModelConfig, ModelRepository, load_model_config

INPUTS = [{"name": "x", "datatype": "FP32", "dims": [4]}]
OUTPUTS = [{"name": "y", "datatype": "FP32", "dims": [4]}]


def config_file(root: Path, config: dict | str, name: str = "m") -> Path:
    """Write ``root/name/config.yaml`` from a mapping (as YAML) or raw text."""
    path = root / name / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def invalid(tmp_path: Path, config: dict | str) -> tuple[str, Path]:
    path = config_file(tmp_path, config)
    with pytest.raises(ModelConfigError) as info:
        load_model_config(path, model_name="m")
    return str(info.value), path


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    path = config_file(tmp_path, {"inputs": INPUTS, "outputs": OUTPUTS})
    config = load_model_config(path, model_name="m")
    assert config.name == "m"
    assert (config.backend, config.precision) == ("auto", "fp32")
    assert config.max_batch_size == 8
    assert config.batching is True
    assert config.version_policy == "latest"
    assert config.warmup_batch_sizes == (1, 8)
    assert config.full_shape(config.inputs[0]) == [-1, 4]


def test_valid_config_with_every_section(tmp_path: Path) -> None:
    path = config_file(tmp_path, {
        "name": "m",
        "backend": "int8",
        "precision": "int8",
        "max_batch_size": 16,
        "max_queue_delay_ms": 0.5,
        "max_queue_size": 4,
        "default_timeout_ms": 250,
        "instance_count": 2,
        "version_policy": "all",
        "inputs": [{"name": "x", "datatype": "fp16", "dims": [3, -1]},
                   {"name": "mask", "datatype": "BOOL", "dims": [-1]}],
        "outputs": [{"name": "y", "datatype": "INT64", "dims": [1]}],
        "warmup": {"batch_sizes": [2, 16]},
        "tensorrt": {"opt_batch_size": 8, "workspace_mib": 256},
    })
    config = load_model_config(path, model_name="m")
    assert config.inputs[0].datatype == "FP16"  # case-insensitive, normalised
    assert config.inputs[0].dims == (3, -1)
    assert config.full_shape(config.inputs[1]) == [-1, -1]
    assert config.warmup_batch_sizes == (2, 16)
    assert config.tensorrt.opt_batch_size == 8
    assert config.version_policy == "all"


def test_batching_off_needs_no_queue_delay(tmp_path: Path) -> None:
    path = config_file(tmp_path, {"max_batch_size": 0, "inputs": INPUTS, "outputs": OUTPUTS})
    config = load_model_config(path, model_name="m")
    assert config.batching is False
    assert config.full_shape(config.inputs[0]) == [4]
    assert config.warmup_batch_sizes == (1,)


def test_unknown_key(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"inputs": INPUTS, "outputs": OUTPUTS, "max_batch": 4})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - max_batch: Extra inputs are not permitted "
                       "(remove it or check its spelling)")


def test_unknown_nested_key_names_its_path(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"inputs": INPUTS, "outputs": OUTPUTS,
                                       "warmup": {"sizes": [1]}})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - warmup.sizes: Extra inputs are not permitted "
                       "(remove it or check its spelling)")


def test_bad_datatype(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {
        "inputs": [{"name": "x", "datatype": "FP8", "dims": [4]}], "outputs": OUTPUTS})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - inputs.0.datatype: datatype 'FP8' is not one of BOOL, UINT8, UINT16, "
                       "UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES")


@pytest.mark.parametrize("dims", [[4, 0], [-2]])
def test_bad_dims(tmp_path: Path, dims: list[int]) -> None:
    message, path = invalid(tmp_path, {
        "inputs": INPUTS, "outputs": [{"name": "y", "datatype": "FP32", "dims": dims}]})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       f"  - outputs.0.dims: dims {dims}: each must be a positive size "
                       "or -1 (variable)")


def test_duplicate_input_names(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"inputs": INPUTS * 2, "outputs": OUTPUTS})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - (top level): input names must be unique; repeated: x")


def test_duplicate_output_names(tmp_path: Path) -> None:
    message, _ = invalid(tmp_path, {"inputs": INPUTS, "outputs": OUTPUTS * 3})
    assert message.endswith("  - (top level): output names must be unique; repeated: y")


def test_warmup_batch_size_over_max_batch_size(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"max_batch_size": 4, "warmup": {"batch_sizes": [1, 8]},
                                       "inputs": INPUTS, "outputs": OUTPUTS})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - (top level): warmup batch size 8 is over max_batch_size 4: "
                       "lower warmup.batch_sizes or raise max_batch_size")


def test_name_differing_from_directory(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"name": "other", "inputs": INPUTS, "outputs": OUTPUTS})
    assert message == (f"{path}: name 'other' differs from its directory 'm'; "
                       "rename one or drop `name:`")


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("42\n", "int"),
                                            ("just text\n", "str")])
def test_non_mapping_yaml(tmp_path: Path, text: str, kind: str) -> None:
    message, path = invalid(tmp_path, text)
    assert message == f"{path}: expected a mapping of settings, got {kind}"


def test_invalid_yaml(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, "inputs: [\n  {name: x\n")
    assert message.startswith(f"{path}: not valid YAML: ")
    assert "line " in message  # PyYAML's position, so the user can find the mistake


def test_backend_int8_with_precision_fp16(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"backend": "int8", "precision": "fp16",
                                       "inputs": INPUTS, "outputs": OUTPUTS})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - (top level): backend int8 quantises from fp32: "
                       "set precision: int8 (or fp32)")


def test_eager_backend_with_precision_int8(tmp_path: Path) -> None:
    message, _ = invalid(tmp_path, {"backend": "eager", "precision": "int8",
                                    "inputs": INPUTS, "outputs": OUTPUTS})
    assert message.endswith("  - (top level): precision int8 with backend eager: use backend: "
                            "int8 (or auto), which quantises Linear layers dynamically")


def test_queue_delay_with_batching_off(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"max_batch_size": 0, "max_queue_delay_ms": 5,
                                       "inputs": INPUTS, "outputs": OUTPUTS})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - (top level): max_queue_delay_ms is set but max_batch_size is 0 "
                       "(batching off): set max_batch_size > 0 or drop max_queue_delay_ms")


def test_unknown_backend_lists_choices(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, {"backend": "onnx", "inputs": INPUTS, "outputs": OUTPUTS})
    assert message == (f"{path}: invalid model config (1 problem(s)):\n"
                       "  - backend: Input should be 'auto', 'eager', 'compile', 'int8' or "
                       "'tensorrt' (use one of the allowed values)")


def test_missing_sections_and_several_problems(tmp_path: Path) -> None:
    message, path = invalid(tmp_path, "")
    assert message == (f"{path}: invalid model config (2 problem(s)):\n"
                       "  - inputs: Field required (add it)\n"
                       "  - outputs: Field required (add it)")


def test_model_config_is_frozen() -> None:
    config = ModelConfig.model_validate({"name": "m", "inputs": INPUTS, "outputs": OUTPUTS})
    with pytest.raises(ValueError, match="frozen"):
        config.max_batch_size = 2  # type: ignore[misc]


# -- ModelRepository ---------------------------------------------------------------------------


def fake_versions(root: Path, name: str, versions: dict[str, str | None],
                  config: dict | None = None) -> None:
    """Version directories holding an (empty) artifact file, or nothing when ``None``."""
    config_file(root, config or {"inputs": INPUTS, "outputs": OUTPUTS}, name)
    for version, artifact in versions.items():
        (root / name / version).mkdir(parents=True)
        if artifact is not None:
            (root / name / version / artifact).write_bytes(b"")


def test_repository_discovers_models_and_versions(tmp_path: Path) -> None:
    fake_versions(tmp_path, "a", {"1": "model.pt2", "10": "model.ts", "2": "model.pt",
                                  "3": None, "latest": "model.pt2"})
    fake_versions(tmp_path, "b", {"1": "model.pt2"})
    (tmp_path / "not-a-model").mkdir()  # no config.yaml
    (tmp_path / "stray.yaml").write_text("x: 1\n")
    repository = ModelRepository(tmp_path)

    assert repository.model_names() == ["a", "b"]
    versions = repository.versions("a")
    assert [v.version for v in versions] == [1, 2, 10]  # numeric order; 3 has no artifact
    assert [v.artifact for v in versions] == [tmp_path / "a" / "1" / "model.pt2",
                                              tmp_path / "a" / "2" / "model.pt",
                                              tmp_path / "a" / "10" / "model.ts"]
    assert {v.model for v in versions} == {"a"}


def test_version_policy_latest_serves_only_the_newest(tmp_path: Path) -> None:
    fake_versions(tmp_path, "a", {"1": "model.pt2", "2": "model.pt2", "7": "model.pt2"},
                  {"version_policy": "latest", "inputs": INPUTS, "outputs": OUTPUTS})
    repository = ModelRepository(tmp_path)
    config = repository.config("a")
    assert [v.version for v in repository.served_versions("a", config)] == [7]


def test_version_policy_all_serves_every_version(tmp_path: Path) -> None:
    fake_versions(tmp_path, "a", {"1": "model.pt2", "2": "model.pt2", "7": "model.pt2"},
                  {"version_policy": "all", "inputs": INPUTS, "outputs": OUTPUTS})
    repository = ModelRepository(tmp_path)
    config = repository.config("a")
    assert [v.version for v in repository.served_versions("a", config)] == [1, 2, 7]


def test_model_without_a_version_says_what_to_add(tmp_path: Path) -> None:
    fake_versions(tmp_path, "a", {"1": None, "weights": "model.pt2"})
    repository = ModelRepository(tmp_path)
    with pytest.raises(ModelConfigError) as info:
        repository.versions("a")
    assert str(info.value) == (f"model 'a' has no version: add {tmp_path}/a/1/model.pt2 "
                               "(torch.export) or model.pt (TorchScript)")


def test_repository_config_validates_against_directory_name(tmp_path: Path) -> None:
    config_file(tmp_path, {"name": "b", "inputs": INPUTS, "outputs": OUTPUTS}, "a")
    with pytest.raises(ModelConfigError, match="name 'b' differs from its directory 'a'"):
        ModelRepository(tmp_path).config("a")


@pytest.mark.parametrize("name", ["missing", "..", ".hidden", "a/b"])
def test_unknown_model_is_not_found(tmp_path: Path, name: str) -> None:
    config_file(tmp_path, {"inputs": INPUTS, "outputs": OUTPUTS}, ".hidden")
    repository = ModelRepository(tmp_path)
    with pytest.raises(ModelNotFound) as info:
        repository.versions(name)
    assert info.value.message == f"model '{name}' is not in the repository"
    assert info.value.status == 404


def test_missing_repository_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        ModelRepository(tmp_path / "nope")
    assert str(info.value) == (
        f"model repository {tmp_path / 'nope'} does not exist: set AIINFRA_MODEL_REPOSITORY "
        "to a directory holding <model>/config.yaml")


def test_repository_control_refuses_several_workers() -> None:
    """Each uvicorn worker has its own registry: an unload would reach one of them and answer
    200 while the others keep serving."""
    from serving.settings import Settings  # noqa: PLC0415

    with pytest.raises(ValueError, match="AIINFRA_REPOSITORY_CONTROL needs AIINFRA_WORKERS=1"):
        Settings(workers=2, repository_control=True, control_token="t" * 32)
    assert Settings(workers=2).workers == 2
    assert Settings(workers=1, repository_control=True, control_token="t" * 32).workers == 1
