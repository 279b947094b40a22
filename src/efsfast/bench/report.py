"""results.md and results.json from one run's results: the machine and the
load each section ran under, every target met or not with its measured
ratio and, where missed, what limits it; then each section's tables."""
from __future__ import annotations

import json
import os
import re
from typing import Callable, List, Optional

from . import bulk, core, ntfs3g, serial
from .limits import LIMITS
from .timing import GIB, MIB, Results


def targets(r: Results) -> List[Results]:
    out = core.core_targets(r)
    if "bulk" in r:
        out += bulk.bulk_targets(r["bulk"])
    if "ntfs3g" in r:
        out += ntfs3g.ntfs_targets(r["ntfs3g"])
    if "serial" in r:
        out += serial.serial_targets(r["serial"])
    return out


def _machine_line(r: Results) -> str:
    m = r["machine"]
    line = (f"{m['when']} · {m['platform']} · Python {m['python']} · {m['cpus']} CPUs"
            f" · best of {r['repeat']}, variants interleaved")
    if "total" in r and "import" in r:
        line += (f" · C paths move {r['total'] / GIB:.2f} GiB per point, Python paths "
                 f"{r['py_total'] / MIB:.0f} MiB")
    if m.get("bytecode"):
        line += f" · efsfast's modules {m['bytecode']}"
    if m.get("note"):
        line += f" · {m['note']}"
    return line


def _load_lines(r: Results) -> List[str]:
    loads = r.get("loads", {})
    if not loads:
        return []
    lines = ["", "## Load while each section ran", "",
             "1-minute load average before and after; a section is NOISY where neighbours "
             "ran above 0.3 per CPU (its numbers then measure them too and are not quoted "
             "elsewhere).", "", "| section | before | after | noisy |", "| --- | --- | --- | --- |"]
    for name, ld in loads.items():
        fmt: Callable[[Optional[float]], str] = (lambda x: "?" if x is None else f"{x:.2f}")
        lines.append(f"| {name} | {fmt(ld['before'])} | {fmt(ld['after'])} | "
                     f"{'**yes**' if ld['noisy'] else 'no'} |")
    return lines


def write_reports(r: Results, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(r, f, indent=2, default=str)
    noisy = sorted(n for n, ld in r.get("loads", {}).items() if ld["noisy"])
    lines = ["# efsfast benchmark results", "", _machine_line(r)]
    if noisy:
        lines += ["", f"**Noisy run**: {', '.join(noisy)} ran while other work loaded the "
                      "machine; do not quote those numbers."]
    lines += _load_lines(r)
    lines += ["", "## Targets", "", "| target | measured | goal | met |",
              "| --- | --- | --- | --- |"]
    for t in r["targets"]:
        goal = f"≤ {t['goal']:.0%}" if "cost" in t["target"] else f"≥ {t['goal']}×"
        meas = f"{t['ratio']:.1%}" if "cost" in t["target"] else f"{t['ratio']:.2f}×"
        lines.append(f"| {t['target']} | {meas} | {goal} | {'yes' if t['met'] else 'no'} |")
    missed = [t for t in r["targets"] if not t["met"]]
    if missed:
        lines += ["", "What limits the missed targets:", ""]
        for t in missed:
            # (a target measured at several tree sizes shares its statement)
            general = re.sub(r" \([\d,]+ files\)$", "", t["target"])
            said = [x for x in (t.get("limit"), LIMITS.get(t["target"]) or LIMITS.get(general))
                    if x]
            lines.append(f"- **{t['target']}** ({t['ratio']:.2f}): "
                         + ("; ".join(said) or "not analysed yet"))
    lines += core.report_lines(r)
    lines += bulk.report_lines(r.get("bulk", {}))
    lines += ntfs3g.report_lines(r.get("ntfs3g", {}))
    lines += serial.report_lines(r.get("serial", {}))
    with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    if "import" in r:
        core.plot(r, os.path.join(out_dir, "throughput.png"))
    if "bulk" in r:
        bulk.plot_bulk(r["bulk"], os.path.join(out_dir, "bulk.png"))
