"""``pdelang verify SPEC [--set …] [--json]`` — property-test a spec's discretization.

For each derivative operator: the claimed order against the order observed under grid
refinement (with the error at each grid size); the derived stability bound against the
empirical threshold of the linear differential part; the time scheme's order; and, on random
weights, the generated code against the NumPy reference of the discrete IR.  Exit code 1
when a property fails.  Importing this module does not import torch.
"""

from __future__ import annotations

import json


def configure(parser) -> None:
    from pdelang.cli.main import add_common
    add_common(parser)
    parser.add_argument("--steps", type=int, default=10_000,
                        help="steps for the stability sharpness check (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (weights, states)")
    parser.add_argument("--no-equivalence", dest="equivalence", action="store_false",
                        help="skip the generated-code-vs-reference checks")


def execute(args) -> int:
    from pdelang.spec.load import load_spec
    from pdelang.testing.verify import verify

    if args.steps < 100:
        from pdelang.errors import PdelangError
        raise PdelangError(f"--steps {args.steps}: the sharpness check needs at least 100 steps "
                           "to tell bounded from growing", suggestion="the default is 10000")
    spec = load_spec(args.spec, args.overrides)
    report = verify(spec, seed=args.seed, steps=args.steps, equivalence=args.equivalence)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(report.format_text())
    return 0 if report.passed else 1
