"""Write a benchmark's figures into docs/BENCHMARKS.md (and JSON under benchmarks/results/).

Each benchmark owns one section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
rerunning it replaces only that section, stamped with the command, date and machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"
HEADER = """# Benchmarks

Figures measured by the scripts in `benchmarks/`; each section says how to rerun it. Timings
are wall-clock on the machine named in the section; compare timings only within one section
(one run), as ratios.
"""


def machine() -> str:
    """One line describing the CPU, core count and Python/numpy versions."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def write_section(name: str, title: str, body: str, results: dict | None = None) -> None:
    """Replace (or append) section ``name`` of docs/BENCHMARKS.md."""
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    stamp = _dt.date.today().isoformat()
    block = (f"<!-- bench:{name} -->\n## {title}\n\n`{cmd}`  \n{stamp}, {machine()}\n\n"
             f"{body.strip()}\n<!-- /bench:{name} -->")
    text = DOC.read_text() if DOC.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    if results is not None:
        out = ROOT / "benchmarks" / "results" / f"{name}.json"
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table; floats are printed with 2 decimals unless already strings."""
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
