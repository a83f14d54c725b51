"""One measured figure (a ratio against its target), the table, and benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Figure:
    """One row of the table: ``ratio`` = median(ours) / median(peer), lower is better."""

    case: str  # the suite's case name (``--only``)
    figure: str  # what is compared, pdelang first
    size: str  # e.g. "8×128"
    ratio: float | None = None
    target: float | None = None  # the ratio must be ≤ target (or < target when ``strict``)
    strict: bool = False
    ours_ms: float | None = None
    peer_ms: float | None = None
    rounds: int = 0
    check: str = ""  # the agreement check done before timing
    skipped: str | None = None  # why there is no ratio

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "—"
        return f"{'<' if self.strict else '≤'} {self.target:g}"

    @property
    def verdict(self) -> str:
        if self.skipped is not None:
            return "skipped"
        if self.target is None or self.ratio is None:
            return "info"
        met = self.ratio < self.target if self.strict else self.ratio <= self.target
        return "met" if met else "missed"

    def to_json(self) -> dict:
        return {**asdict(self), "verdict": self.verdict, "target_text": self.target_text}


def _ms(x: float | None) -> str:
    return "—" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def table_rows(figures: list[Figure]) -> list[list[str]]:
    rows = [["figure (pdelang / peer)", "size", "ratio", "target", "verdict", "ours ms",
             "peer ms", "rounds", "check / note"]]
    for f in figures:
        rows.append([f.figure, f.size, "—" if f.ratio is None else f"{f.ratio:.3f}",
                     f.target_text, f.verdict, _ms(f.ours_ms), _ms(f.peer_ms),
                     str(f.rounds) if f.rounds else "—", f.skipped or f.check])
    return rows


def format_table(figures: list[Figure]) -> str:
    rows = table_rows(figures)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 12)
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    rows = table_rows(figures)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for row in rows[1:]:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(out)


HEADER = """# Benchmark results

Produced by `python -m benchmarks --write-results` (see benchmarks/README section in the
project README, "Performance"); each run appends one section below.  Ratios are
median(pdelang) / median(peer) over interleaved rounds in one process; lower is better.
Timings on a shared machine are noisy: read the load average and notes of each run.
"""


def write_results(path: Path, machine: dict, settings: dict, figures: list[Figure],
                  notes: list[str], extra: str = "") -> None:
    """Append one run's section (machine, settings, table, notes) to ``path``."""
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"\n## Run of {stamp}: `{settings['command']}`\n"]
    lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".\n")
    lines.append("Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()
                                         if k != "command") + ".\n")
    lines.append(markdown_table(figures) + "\n")
    if extra:
        lines.append(extra + "\n")
    if notes:
        lines.append("Notes:\n")
        lines.extend(f"- {n}" for n in notes)
        lines.append("")
    path.write_text(text.rstrip("\n") + "\n" + "\n".join(lines), encoding="utf-8")
