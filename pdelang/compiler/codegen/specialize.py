"""Print-time specialization of runtime blocks, and the names a piece of code reads.

A runtime block is general code: it branches on module constants (``if EXTRA_TOKENS:``,
``if BOUNDARY == "copy":``, ``grid if GRID_SHAPE is None else …``) and on the print-time
flags of :mod:`.runtime.constants` (``if ATTENTION_MASKS:``).  The printer knows their
values, so :func:`specialize` keeps only the branch the spec takes: an ``if`` statement
whose test is decided by the known values is replaced by its taken body (dedented) or
removed, a one-line conditional expression by its taken operand, and a view of everything
(``u[:, EXTRA_TOKENS:]`` with no extra tokens) by the tensor itself.  Everything else is
copied line for line, comments included.  Tests that the known values do not decide
(``if ctx.lengths is not None:``) stay as they are.

:func:`free_names` is how each emitted piece says what it needs: the names it reads
(``torch``, ``F``, ``EXTRA_TOKENS``, ``with_ghosts``, …), from its syntax tree.  The
module assembler emits an import, a constant or a block exactly when some emitted piece
reads its name.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Mapping

_UNKNOWN = object()
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Is: operator.is_,
            ast.IsNot: operator.is_not, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}


def _value(node: ast.expr, known: Mapping[str, object]):
    """The value of a test over the known names, or ``_UNKNOWN``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return known.get(node.id, _UNKNOWN)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        value = _value(node.operand, known)
        return _UNKNOWN if value is _UNKNOWN else not value
    if isinstance(node, ast.BoolOp):
        values = [_value(v, known) for v in node.values]
        decisive = (lambda v: not v) if isinstance(node.op, ast.And) else bool
        for value in values:  # a known decisive operand decides, whatever follows
            if value is _UNKNOWN:
                return _UNKNOWN
            if decisive(value):
                return value
        return values[-1]
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        left, right = _value(node.left, known), _value(node.comparators[0], known)
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        return _COMPARE[type(node.ops[0])](left, right)
    return _UNKNOWN


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dedent(lines: list[str], by: int) -> list[str]:
    return [line[by:] if line.strip() else line for line in lines]


def _fold_once(lines: list[str], known: Mapping[str, object]) -> list[str] | None:
    """``lines`` with the first decidable ``if`` or conditional expression folded, or None
    when there is none."""
    tree = ast.parse("\n".join(lines) + "\n")
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            value = _value(node.test, known)
            if value is _UNKNOWN:
                simpler = _simplified_test(lines, node.test, known)
                if simpler is not None:
                    return simpler
                continue
            first, last = node.lineno - 1, node.end_lineno  # lines[first:last] is the if
            head = lines[first]
            if head.lstrip().startswith("elif "):
                return _fold_elif(lines, node, bool(value))
            if value:
                body = lines[node.test.end_lineno:node.body[-1].end_lineno]
                return (lines[:first] + _dedent(body, _indent(body[0]) - _indent(head))
                        + lines[last:])
            if not node.orelse:
                return lines[:first] + lines[last:]
            start = node.orelse[0].lineno - 1
            if lines[start].lstrip().startswith("elif "):  # the elif becomes the if
                at = lines[start].index("elif ")
                return lines[:first] + [lines[start][:at] + lines[start][at + 2:]] + \
                    lines[start + 1:]
            body = lines[_else_line(lines, node) + 1:node.orelse[-1].end_lineno]
            return lines[:first] + _dedent(body, _indent(body[0]) - _indent(head)) + \
                lines[last:]
        if isinstance(node, ast.Subscript) and node.lineno == node.end_lineno \
                and _drops_nothing(node.slice, known):  # u[:, EXTRA_TOKENS:] with 0 → u
            return _replace(lines, node, node.value)
        if isinstance(node, ast.IfExp) and node.lineno == node.end_lineno:
            value = _value(node.test, known)
            if value is _UNKNOWN:
                continue
            taken = node.body if value else node.orelse
            if taken.lineno != taken.end_lineno:  # pragma: no cover - blocks keep it short
                continue
            return _replace(lines, node, taken)
    return None


def _replace(lines: list[str], node: ast.expr, by: ast.expr) -> list[str]:
    """``lines`` with the one-line expression ``node`` replaced by its part ``by``."""
    row = node.lineno - 1
    line = lines[row].encode("utf-8")  # ast offsets count UTF-8 bytes
    piece = line[by.col_offset:by.end_col_offset]
    line = line[:node.col_offset] + piece + line[node.end_col_offset:]
    return lines[:row] + [line.decode("utf-8")] + lines[row + 1:]


def _drops_nothing(index: ast.expr, known) -> bool:
    """Whether ``index`` is ``:, K:`` with K known to be 0 (a view of everything)."""
    if not (isinstance(index, ast.Tuple) and len(index.elts) == 2
            and all(isinstance(e, ast.Slice) and e.upper is None and e.step is None
                    for e in index.elts)):
        return False
    whole, tail = index.elts
    return whole.lower is None and tail.lower is not None \
        and _value(tail.lower, known) is not _UNKNOWN and _value(tail.lower, known) == 0


def _else_line(lines: list[str], node: ast.If) -> int:
    """The index of the ``else:`` line of an ``if`` with an else block."""
    row = node.orelse[0].lineno - 2
    while not lines[row].lstrip().startswith("else"):
        row -= 1
    return row


def _fold_elif(lines: list[str], node: ast.If, value: bool) -> list[str]:
    """Fold a decided ``elif``: taken, it becomes the final ``else:``; not taken, it goes
    (its ``elif``/``else`` successor, if any, takes its place)."""
    first, last = node.lineno - 1, node.end_lineno
    head = lines[first]
    if value:
        end = node.body[-1].end_lineno
        return lines[:first] + [head[:_indent(head)] + "else:"] + \
            lines[node.test.end_lineno:end] + lines[last:]
    if not node.orelse:
        return lines[:first] + lines[last:]
    start = node.orelse[0].lineno - 1
    if not lines[start].lstrip().startswith("elif "):
        start = _else_line(lines, node)
    return lines[:first] + lines[start:]


def _simplified_test(lines: list[str], test: ast.expr, known) -> list[str] | None:
    """``lines`` with the known operands of an undecided one-line ``and``/``or`` test left
    out, nested tests included (``if GRID_MASKS and padded:`` → ``if padded:``;
    ``if SOFTMAX and (not SINKHORN or kernel == "softmax"):`` → ``if kernel == "softmax":``),
    or None when there are none."""
    if not isinstance(test, ast.BoolOp) or test.lineno != test.end_lineno:
        return None
    row = test.lineno - 1
    line = lines[row].encode("utf-8")  # ast offsets count UTF-8 bytes
    reduced = _reduced(test, known, line)
    if reduced is None:
        return None
    line = line[:test.col_offset] + reduced[0] + line[test.end_col_offset:]
    return lines[:row] + [line.decode("utf-8")] + lines[row + 1:]


def _reduced(node: ast.expr, known, line: bytes) -> tuple[bytes, bool] | None:
    """(source, compound) of an undecided test with its known operands left out, at any
    depth of ``and``/``or``/``not``, or None when nothing is known in it; ``compound``:
    the source is an ``and``/``or`` that needs parentheses inside another one."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _reduced(node.operand, known, line)
        if inner is None:
            return None
        return (b"not (" + inner[0] + b")" if inner[1] else b"not " + inner[0]), False
    if not isinstance(node, ast.BoolOp):
        return None
    kept: list[tuple[bytes, bool]] = []
    changed = False
    for value in node.values:
        if _value(value, known) is not _UNKNOWN:  # known and not decisive: leave it out
            changed = True
            continue
        inner = _reduced(value, known, line)
        if inner is None:
            kept.append((line[value.col_offset:value.end_col_offset],
                         isinstance(value, (ast.BoolOp, ast.IfExp))))
        else:
            changed = True
            kept.append(inner)
    if not changed:
        return None
    if len(kept) == 1:
        return kept[0]
    joined = (b" and " if isinstance(node.op, ast.And) else b" or ").join(
        b"(" + piece + b")" if compound else piece for piece, compound in kept)
    return joined, True


def specialize(text: str, known: Mapping[str, object]) -> str:
    """``text`` (whole statements) with every branch that ``known`` decides folded."""
    return _specialize(text, tuple(sorted(known.items(), key=lambda kv: kv[0])))


@functools.cache
def _specialize(text: str, known: tuple) -> str:
    lines = text.rstrip("\n").split("\n")
    values = dict(known)
    while (folded := _fold_once(lines, values)) is not None:
        lines = folded
    return "\n".join(lines) + "\n"


@functools.cache
def free_names(text: str) -> frozenset[str]:
    """Every name that ``text`` (whole statements) reads: the module-level names it needs
    (a superset: a local variable of the same name is counted too)."""
    return frozenset(node.id for node in ast.walk(ast.parse(text))
                     if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load))
