"""RDS parameter values: plain numbers or formulas such as ``{DBInstanceClassMemory/32768}``."""

from __future__ import annotations

import ast
import operator

_FUNCTIONS = {"GREATEST": max, "LEAST": min, "SUM": lambda *v: sum(v)}
_OPERATORS = {ast.Mult: operator.mul, ast.Div: operator.floordiv, ast.FloorDiv: operator.floordiv,
              ast.Add: operator.add, ast.Sub: operator.sub}


def evaluate(value: str, *, memory_bytes: int, vcpus: int, storage_gib: int = 0) -> int | None:
    """The integer a parameter value stands for on the instance, or None if it is not one."""
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.replace("{", "(").replace("}", ")")
    names = {"DBInstanceClassMemory": memory_bytes, "DBInstanceVCPU": vcpus,
             "AllocatedStorage": storage_gib * 1024**3}
    try:
        return _eval(ast.parse(text, mode="eval").body, names)
    except (SyntaxError, ValueError, KeyError, ZeroDivisionError):
        return None


def _eval(node: ast.AST, names: dict[str, int]) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return int(node.value)
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_eval(node.left, names), _eval(node.right, names))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function = _FUNCTIONS[node.func.id.upper()]
        return int(function(*(_eval(arg, names) for arg in node.args)))
    raise ValueError(f"unsupported expression {ast.dump(node)}")
