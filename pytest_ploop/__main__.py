"""``python -m pytest_ploop``: render a saved run record again, compare two, print the schema.

    python -m pytest_ploop report RUN.json --html OUT.html --md OUT.md
    python -m pytest_ploop report NEW.json --compare OLD.json --fail-on-regression 10
    python -m pytest_ploop schema

``report`` prints the terminal summary (``-v`` for the details) and writes the files asked
for. Exit status: 0; 1 when ``--fail-on-regression`` finds a regression; 2 for a usage error
or a file that is not a run record.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._errors import PloopError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_ploop", description="pytest-ploop run records"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="render a saved run record (written by --ploop-report)")
    rep.add_argument("run", metavar="RUN.json", help="the run record")
    rep.add_argument("--html", metavar="OUT.html", action="append", default=[])
    rep.add_argument("--md", metavar="OUT.md", action="append", default=[])
    rep.add_argument("--json", metavar="OUT.json", action="append", default=[])
    rep.add_argument("--compare", metavar="OLD.json", help="an earlier run to compare with")
    rep.add_argument(
        "--fail-on-regression",
        metavar="PCT",
        type=float,
        help="with --compare: exit 1 when wall time grew, or speedup fell, by more than PCT%%",
    )
    rep.add_argument("-v", "--verbose", action="count", default=0, help="more detail")
    sub.add_parser("schema", help="print the JSON Schema of run records")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    from . import _report
    from ._report import _json

    if args.command == "schema":
        print(json.dumps(_json.JSON_SCHEMA, indent=2))
        return 0
    if args.fail_on_regression is not None and args.compare is None:
        print("error: --fail-on-regression needs --compare OLD.json", file=sys.stderr)
        return 2
    try:
        report = _report.read(args.run)
        old = _report.read(args.compare) if args.compare else None
        comparison = (
            _report.compare(old, report, args.fail_on_regression) if old is not None else None
        )
    except (PloopError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in _report.terminal_lines(report, args.verbose, comparison):
        print(line)
    wanted = {"html": args.html, "md": args.md, "json": args.json}
    paths = [p for kind in wanted.values() for p in kind]
    for kind, given in wanted.items():
        for path in given:
            if not path.lower().endswith(f".{kind}"):
                print(f"error: --{kind} {path}: the name must end in .{kind}", file=sys.stderr)
                return 2
    for path in _report.write_reports(report, paths, comparison=comparison):
        print(f"ploop: wrote {path}")
    return 1 if comparison is not None and comparison.regressed else 0


if __name__ == "__main__":
    sys.exit(main())
