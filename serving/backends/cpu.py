"""CPU and CUDA backends built on plain PyTorch: eager, torch.compile and dynamic int8."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from serving.backends.base import Backend, load_module
from serving.repository.config import ModelConfig

_FLOAT_DTYPE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
                "int8": torch.float32}


def _prepare(config: ModelConfig, artifact: Path, device: torch.device) -> nn.Module:
    module = load_module(artifact).to(device)
    if config.precision in ("fp16", "bf16"):
        module = module.to(_FLOAT_DTYPE[config.precision])
    return module


class EagerBackend(Backend):
    name = "eager"

    def __init__(self, config: ModelConfig, artifact: Path, device: torch.device) -> None:
        module = _prepare(config, artifact, device)
        super().__init__(config, module, device, _input_dtype(config))


class CompileBackend(Backend):
    """``torch.compile`` with dynamic shapes, so one graph serves every batch size."""

    name = "compile"

    def __init__(self, config: ModelConfig, artifact: Path, device: torch.device) -> None:
        module = _prepare(config, artifact, device)
        compiled = torch.compile(module, dynamic=True)
        super().__init__(config, compiled, device, _input_dtype(config))


class Int8Backend(Backend):
    """Dynamic int8 quantisation of every Linear layer (weights int8, activations per batch)."""

    name = "int8"

    def __init__(self, config: ModelConfig, artifact: Path, device: torch.device) -> None:
        if device.type != "cpu":
            raise ValueError("backend int8 runs on CPU only: use tensorrt (fp16) on GPU")
        module = quantize_linear_int8(load_module(artifact))
        super().__init__(config, module, device)


def _input_dtype(config: ModelConfig) -> torch.dtype | None:
    return _FLOAT_DTYPE[config.precision] if config.precision in ("fp16", "bf16") else None


def quantize_linear_int8(module: nn.Module) -> nn.Module:
    """Quantise Linear layers of an eager module or of a ``torch.export`` graph to int8.

    ``torch.export`` graphs call ``aten.linear`` on attributes instead of holding ``nn.Linear``
    submodules, so those calls are first turned back into ``nn.Linear`` modules, then the
    stock dynamic quantiser swaps them for their int8 counterparts.
    """
    if isinstance(module, torch.jit.ScriptModule):
        raise ValueError(
            "backend int8 needs a torch.export artifact (model.pt2), not TorchScript"
        )
    if isinstance(module, torch.fx.GraphModule):
        _lift_linear_calls(module)
    quantized = torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)
    return quantized.eval()


def _lift_linear_calls(graph_module: torch.fx.GraphModule) -> None:
    graph = graph_module.graph
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.aten.linear.default:
            continue
        x, weight_node, *rest = node.args
        bias_node = rest[0] if rest else None
        if weight_node.op != "get_attr" or (bias_node is not None and bias_node.op != "get_attr"):
            continue
        weight = _fetch(graph_module, weight_node.target)
        bias = _fetch(graph_module, bias_node.target) if bias_node is not None else None
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if bias is not None:
                linear.bias.copy_(bias)
        target = f"int8_linear_{count}"
        count += 1
        graph_module.add_submodule(target, linear)
        with graph.inserting_after(node):
            replacement = graph.call_module(target, (x,))
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
    graph.eliminate_dead_code()
    graph_module.recompile()


def _fetch(root: nn.Module, target: str) -> torch.Tensor:
    value: object = root
    for part in target.split("."):
        value = getattr(value, part)
    assert isinstance(value, torch.Tensor)
    return value
