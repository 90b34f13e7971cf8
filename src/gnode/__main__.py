"""``python -m gnode <command>``: a registry of subcommands (``verify``, ``check-config``).

Each subcommand registers a function that adds its arguments to a parser and returns the
function run with the parsed arguments (its return value is the exit status).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

#: name -> (one-line help, setup(parser) -> run(args) -> exit status)
COMMANDS: dict[str, tuple[str, Callable]] = {}


def command(name: str, help: str):
    def register(setup):
        COMMANDS[name] = (help, setup)
        return setup

    return register


@command("verify", "check every result file against its checksum; list (and delete) corrupt ones")
def _verify(p: argparse.ArgumentParser):
    p.add_argument("paths", nargs="*", default=["results"], help="folders or files (default: results)")
    p.add_argument("--delete", action="store_true", help="delete corrupt files so that snakemake rebuilds them")

    def run(args) -> int:
        from gnode import verify

        findings, checked = [], 0
        for root in args.paths:
            if not Path(root).exists():
                print(f"verify: {root}: no such file or folder", file=sys.stderr)
                return 2
            f, n = verify.verify_tree(root)
            findings += f
            checked += n
        corrupt = [f for f in findings if f.kind == verify.CORRUPT]
        for f in findings:
            print(f"{f.kind.upper():9s} {f.path}: {f.problem}")
        print(f"verify: {checked} files checked, {len(corrupt)} corrupt, "
              f"{sum(f.kind == verify.UNCHECKED for f in findings)} without checksum, "
              f"{sum(f.kind == verify.STALE for f in findings)} stale checksums")
        removable = [f for f in findings if f.kind != verify.UNCHECKED]
        if removable and not args.delete and sys.stdin.isatty():
            try:
                answer = input(f"delete the {len(removable)} files listed as corrupt or stale so that snakemake rebuilds them? [y/N] ")
            except EOFError:
                answer = ""
            args.delete = answer.strip().lower() in ("y", "yes")
        if args.delete and removable:
            for gone in verify.delete(removable):
                print(f"deleted {gone}")
            if corrupt:
                print("run snakemake again to rebuild them")
            return 0 if not corrupt else 1
        return 1 if corrupt else 0

    return run


@command("check-config", "check config files and snakemake's --configfile/--config arguments before a run")
def _check_config(p: argparse.ArgumentParser):
    p.add_argument("--base", default="config/config.yaml", help="the Snakefile's own configfile")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the arguments given to snakemake (after --)")

    def run(args) -> int:
        from gnode.config import ConfigError, check_snakemake_args

        try:
            argv = args.args[1:] if args.args[:1] == ["--"] else args.args
            check_snakemake_args(argv, base=args.base)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gnode", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    runners = {}
    for name, (help_, setup) in COMMANDS.items():
        runners[name] = setup(sub.add_parser(name, help=help_, description=help_))
    args = parser.parse_args(argv)
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
