"""Appending measured figures to ``benchmarks/RESULTS.md``.

Every row records the command that produced it, the machine and the date: a figure without
those cannot be reproduced, so it is not worth keeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks import machine

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"

HEADER = """# Benchmark results

Figures measured by `regio bench ...` commands. Each section names the command, the machine and
the date; rerun the command to reproduce. Tests never assert on these numbers.
"""


def record_section(
    title: str,
    command: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    notes: str = "",
    path: Path = RESULTS_PATH,
) -> None:
    info = machine.describe()
    lines = [
        "",
        f"## {title} ({info['date']})",
        "",
        f"- command: `{command}`",
        f"- machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"Linux {info['kernel']}",
    ]
    if notes:
        lines.append(f"- notes: {notes}")
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    existing = path.read_text(encoding="utf-8") if path.exists() else HEADER
    path.write_text(existing.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
