"""``python -m pytest_ploop``: render a saved run record again, compare two, merge the
records and the durations of a suite's shards, print the schema.

    python -m pytest_ploop report RUN.json --html OUT.html --md OUT.md
    python -m pytest_ploop report NEW.json --compare OLD.json --fail-on-regression 10
    python -m pytest_ploop report merge SHARD1.json SHARD2.json ... --html ALL.html
    python -m pytest_ploop durations export [--rootdir DIR] [-o OUT.json]
    python -m pytest_ploop durations merge A.json B.json ... [-o OUT.json] [--into DIR]
    python -m pytest_ploop schema

``report`` prints the terminal summary (``-v`` for the details) and writes the files asked
for. ``report merge`` does the same for one record made of the shards' records (see
``_report/_merge.py``); a record file named ``merge`` is still rendered by
``report merge`` (one name) or ``report ./merge``. Exit status: 0; 1 when
``--fail-on-regression`` finds a regression; 2 for a usage error or a file that is not a run
record (or durations file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import PloopError

if TYPE_CHECKING:
    from ._report import RunReport


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_ploop", description="pytest-ploop run records"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "report",
        help="render a saved run record (written by --ploop-report), or merge shards' records",
        usage="%(prog)s [-h] RUN.json [options]\n       %(prog)s merge RUN.json [RUN.json ...] "
        "[options]",
    )
    rep.add_argument(
        "runs",
        nargs="+",
        metavar="RUN.json",
        help="the run record; or `merge` and the records of a suite's shards, merged into one",
    )
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
    _durations_parser(sub.add_parser("durations", help="export and merge recorded durations"))
    return parser


def _durations_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    export = sub.add_parser(
        "export", help="write the durations in a project's pytest cache to a file (for a CI job)"
    )
    export.add_argument(
        "--rootdir",
        metavar="DIR",
        default=".",
        help="the project's root folder (its .pytest_cache), or a pytest cache folder; "
        "default: the current folder",
    )
    export.add_argument("-o", "--output", metavar="OUT.json", help="default: standard output")
    merge = sub.add_parser(
        "merge", help="merge durations files (the newest measurement of each test wins)"
    )
    merge.add_argument(
        "inputs",
        nargs="+",
        metavar="FILE",
        help="files written by `durations export`, {test id: seconds} files, or pytest cache "
        "folders",
    )
    merge.add_argument("-o", "--output", metavar="OUT.json", help="write the merged file here")
    merge.add_argument(
        "--into",
        metavar="DIR",
        help="write the merged durations into the pytest cache of the project at DIR (or the "
        "cache folder DIR), replacing the durations there, for the next run's shards",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    from . import _report
    from ._report import _json

    if args.command == "schema":
        print(json.dumps(_json.JSON_SCHEMA, indent=2))
        return 0
    if args.command == "durations":
        return _durations(args)
    if args.fail_on_regression is not None and args.compare is None:
        print("error: --fail-on-regression needs --compare OLD.json", file=sys.stderr)
        return 2
    wanted = {"html": args.html, "md": args.md, "json": args.json}
    paths = [p for kind in wanted.values() for p in kind]
    for kind, given in wanted.items():
        for path in given:
            if not path.lower().endswith(f".{kind}"):
                print(f"error: --{kind} {path}: the name must end in .{kind}", file=sys.stderr)
                return 2
    # `report merge A.json ...` merges; `report merge` alone is a record file named merge.
    merging = len(args.runs) > 1 and args.runs[0] == "merge"
    if len(args.runs) > 1 and not merging:
        print(
            "error: report takes one run record; to merge shards' records: "
            "report merge A.json B.json ...",
            file=sys.stderr,
        )
        return 2
    if args.runs == ["merge"] and not Path("merge").exists():
        # Most likely a shell glob or a CI variable that named no file.
        print(
            "error: report merge: name the shards' records: report merge A.json B.json ... "
            "(to render a record file named merge: report ./merge)",
            file=sys.stderr,
        )
        return 2
    try:
        report = _merged(args.runs[1:]) if merging else _report.read(args.runs[0])
        old = _report.read(args.compare) if args.compare else None
        comparison = (
            _report.compare(old, report, args.fail_on_regression) if old is not None else None
        )
    except (PloopError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in _report.terminal_lines(report, args.verbose, comparison):
        print(line)
    unwritten = 0
    for path in paths:  # each on its own: one that cannot be written leaves the others
        try:
            written = _report.write_report(report, path, comparison=comparison)
        except OSError as exc:
            print(
                f"error: cannot write the report {path}: {exc}: give a path in a folder "
                "that can be written",
                file=sys.stderr,
            )
            unwritten += 1
            continue
        print(f"ploop: wrote {written}")
    if unwritten:
        return 2
    return 1 if comparison is not None and comparison.regressed else 0


def _merged(paths: Sequence[str]) -> RunReport:
    """The shards' records merged, each shard's own summary printed first."""
    from ._report import _merge, summary_line

    shards = _merge.read_shards(paths)
    for position, (path, shard) in enumerate(zip(paths, shards, strict=True)):
        line = summary_line(shard).removeprefix("ploop: ")
        print(f"ploop: {_merge.shard_name(position)} ({path}): {line}")
    print("ploop: merged: every shard's timeline starts at 0; wall is the longest shard's")
    return _merge.merge(shards)


def _durations(args: argparse.Namespace) -> int:
    from ._testing import _durations_merge as dm

    into = getattr(args, "into", None)
    if into is not None and Path(into).exists() and not Path(into).is_dir():
        print(
            f"error: --into {into}: not a folder: name the project's root folder (or its "
            ".pytest_cache); -o OUT.json writes a file",
            file=sys.stderr,
        )
        return 2
    try:
        if args.action == "export":
            entries = dm.read_cache(dm.cache_dir(Path(args.rootdir)))
        else:
            entries = dm.merge(dm.read_file(Path(p)) for p in args.inputs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(m.seconds for m in entries.values())
    # The file may go to standard output: the notes go to standard error.
    print(f"ploop: {len(entries)} test durations, {total:.1f}s in all", file=sys.stderr)
    target = ""
    try:
        if into is not None:
            target = f"--into {into}"
            for path in dm.write_cache(dm.cache_dir(Path(into)), entries):
                print(f"ploop: wrote {path}", file=sys.stderr)
        if args.output is not None:
            target = f"-o {args.output}"
            out = Path(args.output)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(dm.dumps(entries), encoding="utf-8")
            print(f"ploop: wrote {args.output}", file=sys.stderr)
        elif into is None:
            sys.stdout.write(dm.dumps(entries))
    except OSError as exc:
        print(f"error: {target}: cannot write: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
