"""Statements within the line width (``codegen/layout.py``): a statement that does not fit is
broken where Python's parser says it may break, and the broken text is the same expression
(the same syntax tree) within the width."""

from __future__ import annotations

import ast

import pytest

from pdelang.compiler.codegen.layout import WIDTH, comment, statement

LONG = "a_rather_long_name_number"
EXPRESSIONS = [
    "Stencil((-2, -1, 0, 1, 2), (-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12), H**2, (1,))",
    "8 / 25 * torch.sqrt(1.0 + torch.sigmoid(torch.sqrt(1.0 + torch.tanh(1 / 2 * u)**2))**2)",
    "-torch.sqrt(1.0 + torch.sigmoid(torch.sqrt(1.0 + torch.tanh(1 / 2 * u)**2))**2) * 8 / 25",
    "-(torch.sqrt(1.0 + torch.sigmoid(u)**2) * torch.tanh(torch.sqrt(1.0 + torch.exp(u))**2 / u))",
    "2 * (3 * (u * torch.tanh(torch.sqrt(1.0 + torch.exp(u))**2 + torch.sigmoid(u)**2 / 5 - u)))",
    " + ".join(f"self.f_{i}(u, ctx, p)" for i in range(6)),
    f"{LONG}_1 * ({LONG}_2 + {LONG}_3) / ({LONG}_4 * {LONG}_5) - {LONG}_6",
    f"({LONG}_1 - {LONG}_2 - ({LONG}_3 - {LONG}_4)) * {LONG}_5 - -{LONG}_6",
    f"(x if {LONG}_2 else y) + {LONG}_4 + ({LONG}_5 or {LONG}_6) + ({LONG}_7 + z)",
    "nn.ModuleList([ComposedSwiftHohenbergCopy2d4FlowLayer() for _ in range(LAYERS)])",
    "Attention(CHANNELS, 12, causal=False, kernel='softmax', iterations=20, bias=True, rank=4)",
    "nn.Parameter(torch.tensor([" + ", ".join(str(0.125 * i) for i in range(20)) + "]))",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_a_long_statement_is_the_same_expression_within_the_width(expr):
    lines = statement(" " * 8, "value = ", expr, note="a note that goes above when needed")
    assert all(len(line) <= WIDTH for line in lines), lines
    code = "\n".join(line[8:] for line in lines if not line.lstrip().startswith("#"))
    broken = ast.parse(code).body[0].value
    assert ast.dump(broken) == ast.dump(ast.parse(expr, mode="eval").body)


def test_a_statement_that_fits_is_one_line():
    assert statement("    ", "return ", "u + DT * k1", note="u ← u + Δt·k₁") == \
        ["    return u + DT * k1  # u ← u + Δt·k₁"]


def test_long_comments_wrap():
    lines = comment("word " * 40, "    ")
    assert len(lines) > 1 and all(len(line) <= WIDTH for line in lines)
    assert all(line.startswith("    #") for line in lines)
