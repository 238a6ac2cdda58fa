"""The medians of several benchmark reports: issue 18's targets are judged on medians of three
full runs, since one run on a shared machine can be a lucky or an unlucky one.

    python -m tests.benchmarks.medians run1.json run2.json run3.json [--json OUT]

Each figure of the results table is the median of the runs that measured it (a run of some
sections only leaves the others out); the growth curves are left to each run's own report. A
target is judged on the medians, its `either` figure's too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks.report import FIGURES, _aligned, _target_text, _value_text, met


class ReportError(Exception):
    """A file that is not a benchmark report, named in the message."""


def load(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a readable JSON report ({exc})") from exc
    if not isinstance(document, dict) or "mode" not in document:
        raise ReportError(f"{path}: not a benchmark report (no 'mode')")
    return document


def medians(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per figure: the median of the runs that have it, with how many did (`<key>__runs`) and
    their values (`<key>__values`), so a reader sees the spread behind each median."""
    modes = {report["mode"] for report in reports}
    if len(modes) > 1:
        raise ReportError(f"the reports mix modes ({', '.join(sorted(modes))}): compare full runs with full runs")
    out: dict[str, Any] = {"mode": modes.pop() if modes else None, "runs": len(reports)}
    for figure in FIGURES:
        values = [r[figure.key] for r in reports if isinstance(r.get(figure.key), (int, float))]
        if not values:
            continue
        out[figure.key] = statistics.median(values)
        out[f"{figure.key}__runs"] = len(values)
        out[f"{figure.key}__values"] = values
    return out


def table(result: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, ...]] = []
    for figure in FIGURES:
        if figure.key not in result:
            continue
        ok = met(figure, result)
        runs = ", ".join(_value_text(figure, v) for v in result[f"{figure.key}__values"])
        rows.append(
            (
                figure.label,
                _value_text(figure, result[figure.key]),
                _target_text(figure),
                "" if ok is None else "yes" if ok else "NO",
                runs,
            )
        )
    return _aligned(("Figure", "Median", "Target", "Met?", "Runs"), rows, right={1})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Medians of several benchmark-report.json files.")
    parser.add_argument("reports", nargs="+", type=Path, help="benchmark reports (JSON)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the medians here")
    args = parser.parse_args(argv)
    try:
        result = medians([load(path) for path in args.reports])
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Medians of {result['runs']} {result['mode']} run(s):")
    for line in table(result):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
