"""pdelang's benchmark suite: each ratio of issue 12's table, against its target, in one process.

    python -m benchmarks [--quick] [--smoke] [--only CASE ...] [--skip CASE ...]
                         [--device cpu|cuda] [--threads 1] [--rounds N] [--no-pypde]
                         [--json] [--write-results [PATH]]

Every figure is median(pdelang) / median(peer) over interleaved rounds (one call of each
variant per round, rotating order, after a warm-up), lower is better; the outputs are
compared before any timing.  By default torch (and numba, for py-pde) run on one thread:
``torch.set_num_threads(1)``, the "one thread each side" figures of the issue.

Cases (``--only``/``--skip``): bert, bert_maps, bert_backward, master, fisher_kpp, compile,
compile_specs, long_seq (CUDA; sequence lengths 1k–16k with peak memory), torch_encoder
(not in the default run: the older comparison with ``nn.TransformerEncoder``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.report import Figure, format_table, write_results
from benchmarks.timing import machine

REPO = Path(__file__).resolve().parents[1]
CASES = ("bert", "bert_maps", "bert_backward", "master", "fisher_kpp", "compile",
         "compile_specs", "long_seq", "torch_encoder")
DEFAULT = tuple(c for c in CASES if c != "torch_encoder")


@dataclass
class Config:
    device: str = "cpu"
    threads: int = 1
    rounds: int = 10
    warmup: int = 2
    rounds_fisher: int = 7
    rounds_compile: int = 5
    pypde: bool = True
    quick: bool = False
    smoke: bool = False


@dataclass
class Sizes:
    bert: list
    backward: list
    fisher: list
    long_seq: list
    specs: list


def sizes_for(cfg: Config) -> Sizes:
    specs = sorted((REPO / "specs").glob("*.yaml"))
    if cfg.smoke:
        return Sizes([(2, 16)], [(2, 16)], [(16, 5)], [32], [REPO / "specs" / "heat1d.yaml"])
    long_seq = [1024, 2048, 4096, 8192, 16384]
    if cfg.quick:
        return Sizes([(8, 128), (32, 256)], [(8, 128)], [(256, 200), (1024, 20)],
                     long_seq[:3], specs)
    return Sizes([(8, 128), (32, 256)], [(8, 128)], [(256, 1000), (1024, 100)], long_seq, specs)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[6:]))
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds (5) and fewer Fisher–KPP steps (256²×200, 1024²×20)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one round: checks that the code runs, measures nothing")
    parser.add_argument("--only", nargs="+", choices=CASES, metavar="CASE",
                        help=f"run only these cases ({', '.join(CASES)})")
    parser.add_argument("--skip", nargs="+", choices=CASES, metavar="CASE", default=[],
                        help="leave these cases out")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch (and numba) threads; default 1 = one thread each side")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timed rounds")
    parser.add_argument("--no-pypde", action="store_true",
                        help="skip the py-pde timing (pdelang's Fisher–KPP field is then "
                             "checked against NumPy)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("--write-results", nargs="?", const=str(REPO / "benchmarks" /
                                                                 "RESULTS.md"),
                        default=None, metavar="PATH",
                        help="append this run to PATH (default benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine (torch "
                     f"{torch.__version__}, {torch.cuda.device_count()} GPUs visible); run "
                     "the suite on a machine with an NVIDIA GPU and a CUDA build of torch, "
                     "or use --device cpu")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        parser.error(f"--device {args.device}: use cpu or cuda[:N]")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def config_of(args: argparse.Namespace) -> Config:
    cfg = Config(device=args.device, threads=args.threads, pypde=not args.no_pypde,
                 quick=args.quick or args.smoke, smoke=args.smoke)
    if args.smoke:
        cfg.rounds = cfg.rounds_fisher = cfg.rounds_compile = 1
        cfg.warmup = 0
    elif args.quick:
        cfg.rounds, cfg.warmup, cfg.rounds_fisher, cfg.rounds_compile = 5, 1, 5, 3
    if args.rounds is not None:
        cfg.rounds = cfg.rounds_fisher = cfg.rounds_compile = args.rounds
    return cfg


def run_case(name: str, cfg: Config, sizes: Sizes, notes: list[str], extras: list[str]
             ) -> list[Figure]:
    from benchmarks import bert, compile_time, fisher_kpp

    if name == "bert":
        return bert.forward(cfg, sizes.bert)
    if name == "bert_maps":
        return bert.maps(cfg, sizes.bert)
    if name == "bert_backward":
        return bert.backward(cfg, sizes.backward)
    if name == "master":
        return bert.master(cfg, sizes.bert)
    if name == "fisher_kpp":
        if cfg.device != "cpu":
            notes.append("Fisher–KPP: pdelang on the GPU vs py-pde's numba on the CPU.")
        return fisher_kpp.run(cfg, sizes.fisher)
    if name == "compile":
        return compile_time.versus_import_torch(cfg)
    if name == "compile_specs":
        figures, table = compile_time.per_spec(cfg, sizes.specs)
        extras.append("Compile times per shipped spec:\n\n" + table)
        return figures
    if name == "long_seq":
        if torch.device(cfg.device).type != "cuda" and not cfg.smoke:
            return [Figure("long_seq", "bert_postln at 1k–16k tokens, peak memory", "—",
                           skipped="needs --device cuda (runs on CPU only in --smoke)")]
        figures, lines = bert.long_sequences(cfg, sizes.long_seq)
        extras.append("Long sequences (batch 1, no maps):\n\n" +
                      "\n".join(f"- {line}" for line in lines))
        return figures
    if name == "torch_encoder":
        from benchmarks.bench_bert_postln import benchmark

        batch, tokens = sizes.bert[0]
        result = benchmark(cfg.device, batch, tokens, repeats=cfg.rounds, warmup=cfg.warmup,
                           threads=cfg.threads)
        check = f"max rel diff {result['max_rel_error_vs_fast_path']:.1e}"
        return [Figure("torch_encoder", f"bert_postln (random weights) vs {name}",
                       f"{batch}×{tokens}", ratio, None, rounds=result["repeats"], check=check)
                for name, ratio in result["ratios"].items()]
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg = config_of(args)
    torch.set_num_threads(cfg.threads)
    sizes = sizes_for(cfg)
    cases = [c for c in (args.only or DEFAULT) if c not in args.skip]
    info = machine(cfg.device)
    command = "python -m benchmarks" + "".join(f" {shlex.quote(a)}" for a in
                                               (argv if argv is not None else sys.argv[1:]))
    each_side = " — one thread each side" if cfg.threads == 1 else ""
    settings = {"command": command,
                "threads": f"{cfg.threads} (torch.set_num_threads({cfg.threads}); numba "
                           f"{cfg.threads} for py-pde){each_side}",
                "rounds": f"{cfg.rounds} (Fisher–KPP {cfg.rounds_fisher}, compile "
                          f"{cfg.rounds_compile}), warm-up {cfg.warmup}",
                "mode": "smoke" if cfg.smoke else "quick" if cfg.quick else "full"}
    say = (lambda *a, **k: print(*a, **k, file=sys.stderr)) if args.json else print
    say("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    say("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    figures: list[Figure] = []
    notes: list[str] = []
    extras: list[str] = []
    start = time.perf_counter()
    for case in cases:
        case_start = time.perf_counter()
        found = run_case(case, cfg, sizes, notes, extras)
        figures.extend(found)
        for f in found:
            ratio = "—" if f.ratio is None else f"{f.ratio:.3f}"
            say(f"[{case}] {f.figure} {f.size}: {ratio} (target {f.target_text}, {f.verdict})"
                f"  {f.skipped or f.check}", flush=True)
        say(f"[{case}] done in {time.perf_counter() - case_start:.1f} s", flush=True)
    say("")
    say(format_table(figures))
    for extra in extras:
        say("\n" + extra)
    for note in notes:
        say("note: " + note)
    say(f"total {time.perf_counter() - start:.0f} s")
    if args.write_results:
        write_results(Path(args.write_results), info, settings, figures, notes,
                      "\n\n".join(extras))
        say(f"appended to {args.write_results}")
    if args.json:
        print(json.dumps({"machine": info, "settings": settings, "notes": notes,
                          "figures": [f.to_json() for f in figures]}, indent=2))
    return 0
