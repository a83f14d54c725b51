"""Shared pieces of the front-end fuzz tests: input strategies, the property, the counter.

The property every fuzz test checks (:func:`outcome`): an input either compiles, or raises a
:class:`~pdelang.errors.PdelangError` whose location is not ``None`` and has a line ≥ 1 and
whose message renders (``str``, JSON); anything else — another exception, a hang past
:data:`CASE_SECONDS` — fails the test with the input.

Two errors have no position in a spec and are outside the property (they are not fuzzed:
the command line passes the path through): a spec path that does not exist (its location
is the path with line 0) and a path that is a directory (no location).  Errors of ``--set``
strings are located in the override itself (``<--set>:1:col``); an invalid limit setting in
the environment is located at ``<environment>:1:col``.

Profiles (environment variable ``PDELANG_FUZZ``): unset or ``default`` — the CI run,
derandomized (the same cases every run, so a failure reproduces), about 5,000 cases;
``long`` — ten times the cases, random seeds.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import json
import os
import signal
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pdelang.errors import PdelangError

REPO = Path(__file__).resolve().parent.parent.parent
PROFILE = os.environ.get("PDELANG_FUZZ", "default").strip() or "default"
if PROFILE not in ("default", "long"):
    raise RuntimeError(f"PDELANG_FUZZ must be 'default' or 'long', not {PROFILE!r}")
SCALE = 10 if PROFILE == "long" else 1
CASE_SECONDS = 20.0  # one case (a load or a whole compile) that takes longer is a bug

# cases run per test (reported by tests/fuzz/conftest.py at the end of the session)
COUNTS: collections.Counter = collections.Counter()
OUTCOMES: collections.Counter = collections.Counter()


def fuzz_settings(examples: int):
    """Hypothesis settings for ``examples`` cases (× 10 in the long profile)."""
    return settings(max_examples=examples * SCALE, derandomize=PROFILE != "long",
                    deadline=None, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


class Hang(Exception):
    """A case ran past :data:`CASE_SECONDS`."""


@contextlib.contextmanager
def time_limit(seconds: float = CASE_SECONDS):
    """Raise :class:`Hang` in the running case after ``seconds`` (SIGALRM; main thread)."""
    def alarm(signum, frame):
        raise Hang(f"the case ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_error(error: PdelangError) -> None:
    """A user-facing error: located (line ≥ 1), renders as text and as JSON."""
    loc = error.location
    assert loc is not None, f"{type(error).__name__} without a location: {error.message}"
    assert loc.line >= 1 and loc.col >= 0, f"bad location {loc!r}: {error.message}"
    text = str(error)
    assert error.message in text
    json.dumps(error.to_json(), ensure_ascii=False)
    assert len(text) < 20_000, f"a {len(text):,}-character message"


def outcome(test: str, run, count: bool = True) -> object:
    """Run one case: its value, or ``None`` for a checked :class:`PdelangError`.  A further
    stage of the same input passes ``count=False`` (the count is of inputs)."""
    if count:
        COUNTS[test] += 1
    started = time.perf_counter()
    try:
        with time_limit():
            value = run()
    except PdelangError as error:
        check_error(error)
        if count:
            OUTCOMES[f"{test}:{type(error).__name__}"] += 1
        return None
    finally:
        elapsed = time.perf_counter() - started
        if elapsed > SLOWEST[1]:
            SLOWEST[:] = [test, elapsed]
    if count:
        OUTCOMES[f"{test}:ok"] += 1
    return value


SLOWEST: list = ["", 0.0]

# ----------------------------------------------------------------------------------- inputs
SPEC_FILES = sorted((REPO / "specs").glob("*.yaml"))
SPEC_TEXTS = {p.stem: p.read_text(encoding="utf-8") for p in SPEC_FILES}
SPEC_DATA = {name: yaml.safe_load(text) for name, text in SPEC_TEXTS.items()}

# text that must never reach generated code as code, and that breaks naive printing
PAYLOADS = [
    "\n", "x\n", "\nimport os\nos.system('true')\n", "\r", "\r\nraise SystemExit", "\u2028x",
    "\u2029", "\x85", "'", '"', '"""', "'''", "\\", "\\n", "\\\nx = 1", "# comment",
    "a # b", "ä", "ｕ", "𝓊", "é" * 3, "\u202e", "\t", "\x00", "\x7f", "{", "}", "{x}", "%s",
    ": ", "- ", "*a", "&a", "!!python/object:os.system", "null", "~", "yes", "no", "on",
    "off", "1e-3", "0x10", "0o7", ".inf", ".nan", "[", "]", "laplace(u)", "u\nu", " ",
]
LONG_STRINGS = ["a" * 5000, "x" * 200 + "\n" + "y" * 200, "(" * 300, "u + " * 400 + "u"]
NUMBERS = [0, -1, 1, 2, -0.0, 0.5, 1.5, 3, 7, 12, 1e-300, 1e-320, 1e300, 1.7e308, -1e300,
           2**31, 2**63, 10**20, 10**400, -(10**400), 4 * 10**4299, float("nan"),
           float("inf"), float("-inf"), 1 << 20, (1 << 20) + 1, 100_000, 100_001, 10**6]
NAMES = ["u", "v", "D", "alpha", "beta", "x", "y", "seq", "rows", "cols", "t", "dt", "pi",
         "diffusion", "interaction", "reaction", "laplace", "mlp", "tanh", "training",
         "forward", "_private", "class", "import", "lambda", "None", "reaction_mlp",
         "norm_diffusion", "zz", "Laplace", "u2", "a" * 100]


def scalar_values():
    return st.one_of(
        st.sampled_from(NUMBERS),
        st.integers(-10**6, 10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.sampled_from(PAYLOADS + NAMES),
        st.text(max_size=12),
        st.sampled_from(LONG_STRINGS),
    )


def yaml_values():
    """A value of any shape: scalars, or lists and mappings of them (nested a little)."""
    return YAML_VALUES


def _yaml_values():
    return st.recursive(
        scalar_values(),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.sampled_from(NAMES + PAYLOADS[:8]), inner,
                                                max_size=3)),
        max_leaves=6)


# ----------------------------------------------------------------------------- expressions
OPERATOR_NAMES = ["laplace", "diff", "attention", "mlp", "linear", "layernorm", "rmsnorm",
                  "conv", "tanh", "relu", "gelu", "sigmoid", "exp", "dt", "sin", "Laplace"]
KEYWORDS = ["heads", "causal", "kernel", "iterations", "bias", "hidden", "activation", "eps",
            "affine", "order", "axis", "accuracy", "x", "u", "zz"]
NUMBER_TEXTS = ["0", "1", "2", "3", "0.5", ".5", "1.", "1e-3", "2.5e2", "1e400", "1e-400",
                "1e-320", "1e300", "12", "4", "64", "1e-99999", "9" * 30, "0" * 50 + "1",
                "1" + "0" * 4400, "16", "17", "1048577"]
OPTION_VALUES = ["true", "false", "True", "softmax", "sinkhorn", "gelu", "relu", "silu",
                 "tanh", "x", "y", "seq", "rows", "u"]
TOKENS = (["u", "D", "alpha", "x", "y", "seq", "pi", "zz", "(", ")", ",", "=", "+", "-", "*",
           "/", "^", "**", "[", "]", "{", "'", '"', "\\", "#", ":", "\n", "\t", "==", "!",
           "@", "$", "ä", "\x00", "\u2028"] + OPERATOR_NAMES + KEYWORDS[:8] + NUMBER_TEXTS[:12])


def _atoms():
    return st.one_of(st.sampled_from(["u", "u", "D", "alpha", "x", "seq", "pi", "zz", "t",
                                      "diffusion", "reaction"]),
                     st.sampled_from(NUMBER_TEXTS))


@st.composite
def _call(draw, inner):
    name = draw(st.sampled_from(OPERATOR_NAMES))
    args = draw(st.lists(inner, max_size=3))
    keywords = [f"{draw(st.sampled_from(KEYWORDS))}="
                f"{draw(st.one_of(st.sampled_from(OPTION_VALUES + NUMBER_TEXTS), inner))}"
                for _ in range(draw(st.integers(0, 2)))]
    return f"{name}({', '.join(args + keywords)})"


def structured_expressions():
    """Expressions over the grammar: numbers, names, operators, calls with random
    positional and keyword arguments, parentheses, signs."""
    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "^"]), inner)
            .map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"-{e}"),
            inner.map(lambda e: f"({e})"),
            _call(inner))
    return st.recursive(_atoms(), extend, max_leaves=12)


@st.composite
def extreme_expressions(draw):
    """Deep nesting, very long sums and products, towers, many digits."""
    kind = draw(st.sampled_from(["nest", "sum", "product", "tower", "parens", "neg", "power",
                                 "mixed"]))
    n = draw(st.one_of(st.integers(1, 60), st.integers(200, 1200),
                       st.sampled_from([49, 50, 51, 999, 1000, 1001, 5000])))
    inner = draw(st.sampled_from(["u", "laplace(u)", "D * u", "1e300", "(u + 1)",
                                  "D * laplace(u)", "mlp(u) + u", "attention(u) * D",
                                  "diff(u, x, 2) - u^3", "exp(-1000) * laplace(u)"]))
    if kind == "nest":
        f = draw(st.sampled_from(["tanh", "sigmoid", "exp", "gelu", "relu", "laplace",
                                  "layernorm", "linear"]))
        return f"{f}(" * n + inner + ")" * n
    if kind == "sum":
        return " + ".join([inner] * n)
    if kind == "product":
        return " * ".join([inner] * min(n, 2000))
    if kind == "tower":
        return "^".join(["2"] * min(n, 50)) + " * u"
    if kind == "parens":
        return "(" * n + inner + ")" * n
    if kind == "neg":
        return "-" * n + inner
    if kind == "power":
        return f"({inner} + 1)^{n}"
    return "".join("tanh(D * (u + " for _ in range(min(n, 80))) + "u" + "))" * min(n, 80)


def token_soup():
    return st.lists(st.sampled_from(TOKENS), max_size=25).map(
        lambda tokens: " ".join(tokens))


def expressions():
    """Every kind of expression (one strategy object, built once: building strategies is
    what costs in Hypothesis)."""
    return EXPRESSIONS


YAML_VALUES = _yaml_values()
EXPRESSIONS = st.one_of(structured_expressions(), structured_expressions(), token_soup(),
                        extreme_expressions(), st.text(max_size=20))


def quoted(text: str) -> str:
    """A YAML double-quoted scalar holding ``text`` exactly."""
    return json.dumps(text)


# ----------------------------------------------------------------------------- spec texts
def _paths(tree, prefix=()):
    """Every (path, value) of a plain YAML tree (mapping keys and list indices)."""
    out = [(prefix, tree)]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            out += _paths(value, prefix + (index,))
    return out


def _get(tree, path):
    for part in path:
        tree = tree[part]
    return tree


def _set(tree, path, value):
    if not path:
        return value
    _get(tree, path[:-1])[path[-1]] = value
    return tree


@st.composite
def mutate_tree(draw, data):
    """One mutation of a plain spec tree: delete, retype, swap, rename, a special value,
    a random expression for a term or the equation."""
    paths = [p for p, _ in _paths(data) if p]
    path = draw(st.sampled_from(paths))
    kind = draw(st.sampled_from(["delete", "value", "value", "swap", "rename", "expression",
                                 "wrap", "add_key", "number"]))
    parent = _get(data, path[:-1])
    if kind == "delete":
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    elif kind == "value":
        _set(data, path, draw(yaml_values()))
    elif kind == "number":
        _set(data, path, draw(st.sampled_from(NUMBERS)))
    elif kind == "swap":
        other = draw(st.sampled_from(paths))
        if other[: len(path)] != path and path[: len(other)] != other:
            a, b = copy.deepcopy(_get(data, path)), copy.deepcopy(_get(data, other))
            _set(data, path, b)
            _set(data, other, a)
    elif kind == "rename" and isinstance(parent, dict):
        new = draw(st.sampled_from(NAMES + PAYLOADS))
        parent[new] = parent.pop(path[-1])
    elif kind == "expression":
        expression = draw(expressions())
        if draw(st.booleans()) and isinstance(data.get("terms"), dict) and data["terms"]:
            data["terms"][draw(st.sampled_from(sorted(data["terms"], key=str)))] = expression
        else:
            data["equation"] = draw(st.sampled_from(["dt(u) = ", "dt(v) = ", "", "u = "])) \
                + expression
    elif kind == "wrap":
        value = _get(data, path)
        _set(data, path, draw(st.sampled_from([[value], {"value": value}, [[value]],
                                               {"x": [value, value]}])))
    elif kind == "add_key" and isinstance(_get(data, path), dict):
        _get(data, path)[draw(st.sampled_from(NAMES + PAYLOADS))] = draw(yaml_values())
    return data


def schema_of(path):
    """The schema node of a path of a spec tree (keys and list indices), or None."""
    from pdelang.compiler.spec import schema as S

    node = S.SPEC_SCHEMA
    for part in path:
        if isinstance(node, S.Field):
            node = node.schema
        if isinstance(node, S.Either):
            node = node.options[1] if isinstance(part, str) else node.options[0]
        if isinstance(part, int):
            node = node.item if isinstance(node, S.Sequence) else None
        elif isinstance(node, S.Record):
            node = node.fields[part].schema if part in node.fields else None
        elif isinstance(node, S.MapOf):
            node = node.value
        else:
            node = None
        if node is None:
            return None
    return node.schema if isinstance(node, S.Field) else node


def spec_names(data) -> tuple[str, tuple, tuple, tuple]:
    """(field, axes, parameters, terms) of a (possibly mutated) spec tree."""
    def mapping(key):
        value = data.get(key) if isinstance(data, dict) else None
        return value if isinstance(value, dict) else {}

    fields = [k for k in mapping("fields") if isinstance(k, str)]
    axes = mapping("grid").get("axes")
    axes = tuple(a for a in axes if isinstance(a, str)) if isinstance(axes, list) else ()
    return (fields[0] if fields else "u", axes or ("seq",),
            tuple(k for k in mapping("parameters") if isinstance(k, str)),
            tuple(k for k in mapping("terms") if isinstance(k, str)))


INTS = [0, 1, 2, 3, 4, 5, 8, 12, 16, 17, 32, 33, 64, 100, 1000, 100_000, 100_001,
        1 << 20, (1 << 20) + 1, 10**7, -1, -2]
FLOATS = [0.0, 1e-320, 1e-300, 1e-12, 1e-5, 0.01, 0.1, 0.5, 1.0, 2.0, 6.0, 1e3, 1e300,
          -0.1, -1.0]


@st.composite
def plausible_expressions(draw, field="u", axes=("x",), parameters=("D",), terms=()):
    """Expressions of the spec's own names, mostly well-formed: what a user might write.

    The recursive strategy is built once per set of names (building it, and validating it on
    its first draw, cost more than the loading it feeds: about 11 ms a case); the cases drawn
    are the same as from a new object."""
    return draw(_plausible_expressions(field, tuple(axes), tuple(parameters), tuple(terms)))


@functools.cache
def _plausible_expressions(field, axes, parameters, terms):
    atoms = [field] * 3 + list(parameters) + list(terms) + ["0.5", "2", "1e-3", "pi"]
    calls = ["laplace({})", "tanh({})", "relu({})", "gelu({})", "sigmoid({})", "exp({})",
             "linear({})", "layernorm({})", "rmsnorm({})", "attention({}, heads=2)",
             "attention({}, causal=true)", "attention({}, kernel=sinkhorn, iterations=3)",
             "mlp({}, hidden=8)", "mlp({}, activation=relu)", "conv({}, kernel=3)",
             "conv({}, kernel=1)", "linear({}, bias=true)"]
    calls += [f"diff({{}}, {a}, {k})" for a in axes for k in (1, 2, 3)]
    calls += [f"diff({{}}, {a}, order=2)" for a in axes]

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "*", "/", "^"]),
                      inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"
                                 if t[1] != "^" else f"({t[0]})^{draw_exponent(t[2])}"),
            inner.map(lambda e: f"-({e})"),
            st.tuples(st.sampled_from(calls), inner).map(lambda t: t[0].format(t[1])))

    return st.recursive(st.sampled_from(atoms), extend, max_leaves=6)


def draw_exponent(text: str) -> str:
    return str(len(text) % 4)  # a small number exponent, derived from the drawn operand


@st.composite
def plausible_value(draw, node, data):
    """A value of the right shape for a schema node (boundary values included)."""
    from pdelang.compiler.spec import schema as S

    field, axes, params, terms = spec_names(data)
    if isinstance(node, S.Either):
        node = node.options[0]
    if isinstance(node, S.Scalar):
        if node.enum is not None:
            return draw(st.sampled_from(list(node.enum) * 3 + ["Lie", "none", ""]))
        if node.kind == "int":
            return draw(st.sampled_from(INTS + [int(node.maximum or 7), int(node.maximum or 7)
                                                + 1, int(node.minimum or 0)]))
        if node.kind == "float":
            return draw(st.sampled_from(FLOATS))
        if node.kind == "bool":
            return draw(st.booleans())
        if node.kind == "identifier":
            return draw(st.sampled_from(list(terms or ("diffusion",)) + list(axes)
                                        + ["x", "y", "zz"]))
        return draw(st.one_of(plausible_expressions(field, axes, params, terms),
                              st.sampled_from(PAYLOADS)))
    if isinstance(node, S.Sequence):
        size = draw(st.integers(node.min_items, (node.max_items or 3) + 1))
        return [draw(plausible_value(node.item, data)) for _ in range(size)]
    return draw(yaml_values())


@st.composite
def plausible_mutation(draw, data):
    """A mutation that keeps the spec's shape: a value of the right type (boundary values
    included), a term or the equation rewritten with the spec's own names."""
    leaves = [p for p, v in _paths(data) if p and not isinstance(v, dict)
              and schema_of(p) is not None]
    if draw(st.integers(0, 2)) == 0 or not leaves:
        field, axes, params, _ = spec_names(data)
        terms = data.get("terms") if isinstance(data.get("terms"), dict) else {}
        expression = draw(plausible_expressions(field, axes, params, ()))
        if terms and draw(st.booleans()):
            terms[draw(st.sampled_from(sorted(terms, key=str)))] = expression
        elif terms:
            names = sorted(terms, key=str)
            pieces = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names),
                                   unique=True))
            data["equation"] = f"dt({field}) = " + " + ".join(map(str, pieces))
        return data
    path = draw(st.sampled_from(leaves))
    _set(data, path, draw(plausible_value(schema_of(path), data)))
    return data


@st.composite
def mutated_spec_texts(draw, mutations=(1, 3), wildness=50, text_edit=True):
    """A shipped spec with a few mutations of its tree — ``wildness`` percent of them wild
    (:func:`mutate_tree`), the others plausible (:func:`plausible_mutation`) — dumped back
    to YAML (and maybe one text-level edit: a duplicated or deleted line, a tab)."""
    name = draw(st.sampled_from(sorted(SPEC_DATA)))
    data = copy.deepcopy(SPEC_DATA[name])
    for _ in range(draw(st.integers(*mutations))):
        if not isinstance(data, dict) or not data:
            break
        wild = draw(st.integers(0, 99)) < wildness
        data = draw(mutate_tree(data) if wild else plausible_mutation(data))
    text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False,
                          default_flow_style=draw(st.sampled_from([False, None])),
                          width=draw(st.sampled_from([80, 10**6])))
    if text_edit and draw(st.integers(0, 4)) == 0:
        text = draw(text_edits(text))
    return text


@st.composite
def text_edits(draw, text):
    lines = text.splitlines(keepends=True) or [""]
    i = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(["duplicate", "delete", "tab", "indent", "dedent", "truncate",
                                 "insert", "comment"]))
    if kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "delete":
        del lines[i]
    elif kind == "tab":
        lines[i] = "\t" + lines[i].lstrip(" ")
    elif kind == "indent":
        lines[i] = " " + lines[i]
    elif kind == "dedent":
        lines[i] = lines[i][1:] if lines[i].startswith(" ") else lines[i]
    elif kind == "truncate":
        cut = draw(st.integers(0, len(text)))
        return text[:cut]
    elif kind == "insert":
        lines.insert(i, draw(st.sampled_from(["&a x\n", "*a\n", "- -\n", "? [a]\n", "key: ",
                                              ": x\n", "!!python/tuple [1]\n", "%YAML 1.1\n",
                                              "---\n", "...\n", "{\n", "'\n", '"\n', "|\n"])))
    elif kind == "comment":
        lines[i] = "# " + lines[i]
    return "".join(lines)


ALIAS_BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def alias_bomb(levels: int = 9, width: int = 9, flow: bool = True) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for k in range(1, levels):
        lines.append(f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@st.composite
def yaml_garbage(draw):
    """YAML-level garbage around a shipped spec: truncation, byte edits, tabs, anchors and
    aliases (an alias bomb), duplicate keys, deep nesting, odd characters."""
    text = SPEC_TEXTS[draw(st.sampled_from(sorted(SPEC_TEXTS)))]
    kind = draw(st.sampled_from(["truncate", "char", "tab", "anchor", "bomb", "duplicate",
                                 "deep", "deep_block", "unicode", "empty", "edits",
                                 "documents", "key_types"]))
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "char":
        i = draw(st.integers(0, len(text)))
        c = draw(st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\ufeff",
                                                              "\x1b", "\x85", "\u2028"])))
        return text[:i] + c + text[i + draw(st.integers(0, 2)):]
    if kind == "tab":
        return text.replace(draw(st.sampled_from(["  ", ": ", "\n"])), "\t", 1)
    if kind == "anchor":
        return draw(st.sampled_from([
            text.replace("pdelang: 1", "pdelang: &v 1\nx_alias: *v", 1),
            text + "extra: *undefined\n",
            text + "description: &self [1, *self]\n",  # a value that contains itself
            text + "description: &m {a: {b: *m}}\n",
            text.replace("grid:", "grid: &g", 1) + "x: *g\n",
            "base: &b {pdelang: 1}\n" + text + "<<: *b\n"]))
    if kind == "bomb":
        levels, width = draw(st.integers(2, 12)), draw(st.integers(2, 12))
        where = draw(st.sampled_from(["top", "description", "terms"]))
        bomb = alias_bomb(levels, width)
        if where == "top":
            return bomb + text
        nested = "".join("  " + line + "\n" for line in bomb.splitlines())
        return text + ("description_bomb:\n" if where == "description" else "terms:\n") + nested
    if kind == "duplicate":
        lines = text.splitlines(keepends=True)
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
    if kind == "deep":
        n = draw(st.sampled_from([5, 31, 32, 33, 100, 1000, 5000]))
        return text + "description: " + "[" * n + "1" + "]" * n + "\n"
    if kind == "deep_block":
        n = draw(st.sampled_from([10, 33, 200]))
        return text + "".join(" " * k + f"k{k}:\n" for k in range(n)) + " " * n + "k: 1\n"
    if kind == "unicode":
        return text.replace("name:", draw(st.sampled_from(["näme:", "name :", "ｎame:",
                                                            "name:\u00a0"])), 1)
    if kind == "empty":
        return draw(st.sampled_from(["", " ", "\n", "#", "---", "...", "~", "null", "[]",
                                     "{}", "1", "'x'", "- a\n- b", "\ufeff"]))
    if kind == "documents":
        return text + "---\n" + text
    if kind == "key_types":
        return text + draw(st.sampled_from(["? [a, b]\n: 1\n", "1: 2\n", "null: 3\n",
                                            "true: x\n", "? {a: 1}\n: 2\n", "1.5: y\n"]))
    return draw(text_edits(text))


# ----------------------------------------------------------------------------- overrides
def _schema_keys():
    from pdelang.compiler.spec import schema as S

    keys = []

    def visit(node, prefix):
        if isinstance(node, S.Field):
            node = node.schema
        if isinstance(node, S.Either):
            node = next(o for o in node.options if isinstance(o, S.Record))
        if isinstance(node, S.Record):
            for name, field in node.fields.items():
                keys.append(prefix + name)
                visit(field, prefix + name + ".")
        elif isinstance(node, S.MapOf):
            for name in node.keys or ("u", "D", "diffusion", "reaction", "zz"):
                keys.append(prefix + name)
                visit(node.value, prefix + name + ".")

    visit(S.SPEC_SCHEMA, "")
    return keys


SCHEMA_KEYS = _schema_keys()
OVERRIDE_VALUES = ["true", "false", "0", "-1", "1.5", "1e-3", "1e400", ".nan", ".inf", "-.inf",
                   "1" + "0" * 400, "9" * 5000, "-" + "9" * 4400, "0" * 5000 + "1",
                   "[0, 12]", "[1, 2, 3]", "{kind: rmsnorm}", "{}", "[]", "",
                   "null", "~", "[[[[[[[[[[1]]]]]]]]]]", "[" * 60 + "]" * 60, "'a: b'", "a: b",
                   "&a [1, *a]", "*a", "!!python/object:os.system", "!!binary aGk=",
                   "D * laplace(u)", "tanh(" * 70 + "u" + ")" * 70, "u + " * 1100 + "u",
                   "2^2^2^2^2^2", "(0-1)^0.5", "rk4", "strang", "layernorm", "pre",
                   "[diffusion]", "1.0e-12", "65536", "1048577", "100001", "1e5",
                   "x\ny", "\t1", "'\\'", '"\\u0000"', '"\\ud800"', "|", "- 1\n- 2",
                   "[" + ", ".join(["&a" + str(i) + " [1]" for i in range(3)]) + "]",
                   "&r [1, *r]", "&m {a: *m}", "{a: &n [*n]}"]


_OVERRIDE_VALUE = st.one_of(
    st.sampled_from(OVERRIDE_VALUES),
    YAML_VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()),
    EXPRESSIONS)


@st.composite
def override_strings(draw):
    """``--set`` strings: known keys with random values, and garbage."""
    kind = draw(st.sampled_from(["known", "known", "typed", "typed", "typed", "garbage",
                                 "soup", "bomb", "deep_key"]))
    if kind == "typed":
        name = draw(st.sampled_from(sorted(SPEC_DATA)))
        data = SPEC_DATA[name]
        leaves = [p for p, v in _paths(data) if p and not isinstance(v, dict)
                  and all(isinstance(k, str) for k in p) and schema_of(p) is not None]
        path = draw(st.sampled_from(leaves))
        value = draw(plausible_value(schema_of(path), data))
        return ".".join(path) + "=" + yaml.safe_dump(value, default_flow_style=True,
                                                      width=10**6).strip().removesuffix(
                                                          "\n...").strip()
    if kind == "known":
        return f"{draw(st.sampled_from(SCHEMA_KEYS))}={draw(_OVERRIDE_VALUE)}"
    if kind == "garbage":
        return draw(st.text(max_size=40))
    if kind == "soup":
        key = draw(st.sampled_from(SCHEMA_KEYS + ["", " ", ".", "a..b", "1x", "grid.", "x\n",
                                                  "grid.spacing\n", "ä", "a" * 300]))
        sep = draw(st.sampled_from(["=", "==", " = ", ":", "= ", "=\n"]))
        return key + sep + draw(st.sampled_from(OVERRIDE_VALUES + PAYLOADS))
    if kind == "bomb":
        levels = draw(st.integers(2, 12))
        parts = ["&b0 [lol, lol, lol, lol, lol, lol, lol, lol]"]
        parts += [f"&b{k} [{', '.join([f'*b{k - 1}'] * 8)}]" for k in range(1, levels)]
        return f"{draw(st.sampled_from(SCHEMA_KEYS))}=[{', '.join(parts)}]"
    return ".".join(draw(st.lists(st.sampled_from(["grid", "time", "a", "b"]),
                                  min_size=1, max_size=40))) + "=1"
