"""``pdelang verify SPEC [--set …] [--json]`` — property-test a spec's discretization.

For each derivative operator: the claimed order against the order observed under grid
refinement (with the error at each grid size); the derived stability bound against the
empirical threshold of the linear differential part; the time scheme's order; and, on random
weights, the generated code against the NumPy oracle of the discrete IR — from a test
state (``--init``) over a time window (``--span``) that stays in a finite range: an
overflow is reported as such, never compared.  Exit code 1 when a property fails.
Importing this module does not import torch.
"""

from __future__ import annotations

import json

from pdelang.cli.main import add_common
from pdelang.compiler.spec.load import load_spec
from pdelang.errors import PdelangError
from pdelang.compiler.spec.initial import option_location, parse_init


def configure(parser) -> None:
    add_common(parser)
    parser.add_argument("--steps", type=int, default=10_000,
                        help="steps for the stability sharpness check (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (weights, states)")
    parser.add_argument("--no-equivalence", dest="equivalence", action="store_false",
                        help="skip the generated-code-vs-reference checks")
    parser.add_argument("--init", default=None, metavar="COND",
                        help="the state of the trajectory checks (generated code vs "
                             "reference, attention maps, normalization): random[:S] "
                             "(N(0, S²), S = 0.1 unless given), uniform:A,B, bump[:H] or "
                             "FILE.pt, as in `pdelang run`.  Default: N(0, 0.5²), made 10× "
                             "smaller (down to 5e-8, said in a note) while the spec's "
                             "trajectory overflows from it; an explicit --init is used as "
                             "given and an overflow fails the check")
    parser.add_argument("--span", default=None, metavar="T0,T1",
                        help="the time window of the trajectory checks, within the spec's "
                             "span and on step boundaries (the state is placed at T0; "
                             "default: the whole span)")


def execute(args) -> int:
    from pdelang.lab.testing.verify import verify  # lazy: numpy

    if args.steps < 100:
        raise PdelangError(f"--steps {args.steps}: the sharpness check needs at least 100 steps "
                           "to tell bounded from growing",
                           option_location("--steps", str(args.steps)), "the default is 10000")
    init = None  # the spec's init:, or verify's own amplitudes
    if args.init is not None:
        init = parse_init(args.init)
    spec = load_spec(args.spec, args.overrides)
    report = verify(spec, seed=args.seed, steps=args.steps, equivalence=args.equivalence,
                    init=init, span=args.span)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(report.format_text())
    return 0 if report.passed else 1
