"""Analysis conditions: small expressions over one measurement, such as
``p95_latency_ms < 800 and error_ratio < 0.01`` or
``p95_latency_ms <= 1.25 * baseline.p95_latency_ms``.

Python's own parser reads them; only numbers, the measurement's names, ``baseline.``
names, arithmetic, comparisons, ``and``/``or``/``not`` and the source's functions
(``increase("name", label="regex")``) are allowed, so a package can never run code on
the controller. A name whose value is missing (too few samples, no baseline) makes
the condition inconclusive rather than true or false.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne}
ARITHMETIC: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv}
BASELINE = "baseline"


class Missing(Exception):
    """A value the condition needs is not there: the result is inconclusive."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Values:
    """What a condition reads: named values and functions of one measurement."""

    def value(self, name: str) -> float | None:
        """The value called ``name``, or None when it was not measured."""
        raise NotImplementedError

    def call(self, function: str, args: list[Any], labels: dict[str, str]) -> float | None:
        """A source function's value, or None when the data is not there."""
        raise NotImplementedError


@dataclass(frozen=True)
class Condition:
    """A parsed condition and the text it came from."""

    text: str
    tree: ast.Expression

    def __str__(self) -> str:
        return self.text


def parse_condition(text: str, names: frozenset[str],
                    functions: Mapping[str, int] = {}) -> Condition:
    """Parse ``text``, allowing the value ``names`` (also as ``baseline.NAME``) and the
    source's ``functions`` (name -> number of leading positional arguments); ValueError
    says what is wrong."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"{text!r} is not an expression such as 'p95_latency_ms < 800'") \
            from None
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    called = {id(call.func) for call in calls}      # checked with their call
    quoted = {id(a) for call in calls for a in (*call.args, *(k.value for k in call.keywords))
              if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in quoted:
            raise ValueError(f"{node.value!r}: text is only a metric name or label filter "
                             f"inside a function's parentheses")
        if id(node) not in called:
            _check(node, names, functions)
    return Condition(text.strip(), tree)


def _check(node: ast.AST, names: frozenset[str], functions: Mapping[str, int]) -> None:
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
               ast.Compare, ast.BinOp, ast.Load, ast.keyword, *COMPARE, *ARITHMETIC)
    if isinstance(node, allowed):
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) \
            and not isinstance(node.value, bool):
        return
    if isinstance(node, ast.Name):
        if node.id not in names and node.id != BASELINE:
            raise ValueError(f"unknown name {node.id!r}; this source measures: "
                             f"{', '.join(sorted(names)) or 'only its functions'}")
        return
    if isinstance(node, ast.Attribute):
        if not (isinstance(node.value, ast.Name) and node.value.id == BASELINE):
            raise ValueError("only baseline.NAME may use a dot")
        if node.attr not in names and node.attr not in functions:
            raise ValueError(f"unknown name baseline.{node.attr}")
        return
    if isinstance(node, ast.Call):
        name = _function_name(node)
        if name not in functions:
            raise ValueError(f"unknown function {name!r}; this source has: "
                             f"{', '.join(sorted(functions)) or 'none'}")
        numbers, strings = node.args[:functions[name]], node.args[functions[name]:]
        if len(node.args) != functions[name] + 1 or not all(
                isinstance(a, ast.Constant) and isinstance(a.value, (int, float))
                and not isinstance(a.value, bool) for a in numbers) or not all(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in strings) \
                or not all(isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
                           and k.arg for k in node.keywords):
            raise ValueError(f"{name}() takes {functions[name]} number(s), a metric name "
                             f"in quotes and label=\"regex\" filters")
        for keyword in node.keywords:
            pattern = ast.literal_eval(keyword.value)
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{keyword.arg}={pattern!r}: not a regular expression "
                                 f"({exc})") from None
        return
    raise ValueError(f"{ast.unparse(node)!r} is not allowed in a condition")


def _function_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            and func.value.id == BASELINE:
        return func.attr
    return func.id if isinstance(func, ast.Name) else ast.unparse(func)


def evaluate(condition: Condition, values: Values, baseline: Values | None) -> bool | None:
    """True or False, or None (inconclusive) when a value it needs is missing."""
    try:
        return bool(_eval(condition.tree.body, values, baseline))
    except Missing:
        return None
    except ZeroDivisionError:
        return None


def missing(condition: Condition, values: Values, baseline: Values | None) -> str | None:
    """What makes the condition inconclusive, or None."""
    try:
        _eval(condition.tree.body, values, baseline)
    except Missing as exc:
        return exc.what
    except ZeroDivisionError:
        return "a division by zero (no samples)"
    return None


def explain(condition: Condition, values: Values, baseline: Values | None) -> str:
    """The condition with the measured values beside each name:
    ``p95_latency_ms 1930 <= 1.25 * baseline.p95_latency_ms 710``."""
    def show(node: ast.AST) -> str:
        text = ast.get_source_segment(condition.text, node) or ast.unparse(node)
        try:
            return f"{text} {_number(_eval(node, values, baseline))}"
        except (Missing, ZeroDivisionError):
            return f"{text} (none)"

    return ", ".join(dict.fromkeys(show(node) for node in _references(condition.tree.body)))


def _references(node: ast.AST) -> list[ast.AST]:
    """The names, baseline names and function calls in ``node``, outermost only."""
    if isinstance(node, (ast.Name, ast.Attribute, ast.Call)):
        return [node]
    return [ref for child in ast.iter_child_nodes(node) for ref in _references(child)]


def _number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def _eval(node: ast.AST, values: Values, baseline: Values | None) -> Any:
    if isinstance(node, ast.BoolOp):
        results = [_eval(v, values, baseline) for v in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values, baseline)
        return not operand if isinstance(node.op, ast.Not) else -operand
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values, baseline)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, values, baseline)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        return ARITHMETIC[type(node.op)](_eval(node.left, values, baseline),
                                         _eval(node.right, values, baseline))
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _found(values.value(node.id), node.id)
    if isinstance(node, ast.Attribute):
        if baseline is None:
            raise Missing("no baseline (no host of the same class on the previous release)")
        return _found(baseline.value(node.attr), f"baseline.{node.attr}")
    if isinstance(node, ast.Call):
        name = _function_name(node)
        source = values
        if isinstance(node.func, ast.Attribute):
            if baseline is None:
                raise Missing("no baseline (no host of the same class on the previous "
                              "release)")
            source = baseline
        args = [_eval(a, values, baseline) for a in node.args]
        labels = {k.arg: _eval(k.value, values, baseline) for k in node.keywords if k.arg}
        return _found(source.call(name, args, labels), ast.unparse(node))
    raise AssertionError(f"unchecked node {ast.dump(node)}")


def _found(value: float | None, what: str) -> float:
    if value is None:
        raise Missing(f"no data for {what}")
    return value
