"""Index arithmetic for rule files: a tiny expression language, parsed by `ast` and evaluated by our own walker.

`i // 2`, `i % 2 == 0`, `i + 6`, `(i - 1) // 2 and i > 0`: integers, placeholder names, `+ - * // %`, unary
minus, comparisons, `and`/`or`/`not`, parentheses. Nothing else parses (no calls, attributes, powers, strings),
and text from a rules file is never given to `eval`: the walker below is the only interpreter.
"""

from __future__ import annotations

import ast
import operator
from typing import Callable

MAX_EXPRESSION_CHARS = 200
MAX_CONSTANT = 10 ** 9

Evaluator = Callable[[dict[str, int]], int | bool]

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
          ast.Mod: operator.mod}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}


class ExpressionError(ValueError):
    """An index expression that is not part of the language, or that cannot be computed for a key."""


def compile_expression(text: str, names: set[str]) -> Evaluator:
    """A function of {name: int} for `text`, refusing anything outside the language or naming unknown names."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an index expression must be non-empty text")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"index expression of {len(text)} characters, over the limit of {MAX_EXPRESSION_CHARS}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExpressionError(f"cannot parse index expression {text!r}") from None
    return _compile(tree.body, text, names)


def _compile(node: ast.AST, text: str, names: set[str]) -> Evaluator:
    """One node of the whitelist, as a closure."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        value = node.value
        if value > MAX_CONSTANT:
            raise ExpressionError(f"constant {value} in {text!r} is over {MAX_CONSTANT}")
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ExpressionError(f"{text!r} uses {name!r}, which the pattern does not define (index "
                                  f"placeholders: {known})")
        return lambda env: env[name]
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        function, left, right = BINARY[type(node.op)], _compile(node.left, text, names), _compile(node.right, text, names)

        def binary(env):
            try:
                return function(left(env), right(env))
            except ZeroDivisionError:
                raise ExpressionError(f"{text!r} divides by zero") from None
        return binary
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = _compile(node.operand, text, names)
        return lambda env: -operand(env)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operand = _compile(node.operand, text, names)
        return lambda env: not operand(env)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(value, text, names) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(part(env) for part in parts)
        return lambda env: any(part(env) for part in parts)
    if isinstance(node, ast.Compare) and all(type(op) in COMPARE for op in node.ops):
        first = _compile(node.left, text, names)
        rest = [(COMPARE[type(op)], _compile(value, text, names)) for op, value in zip(node.ops, node.comparators)]

        def compare(env):
            left = first(env)
            for function, right_of in rest:
                right = right_of(env)
                if not function(left, right):
                    return False
                left = right
            return True
        return compare
    raise ExpressionError(f"{text!r}: only integers, index placeholders, + - * // %, comparisons, and/or/not and "
                          "parentheses are allowed")
