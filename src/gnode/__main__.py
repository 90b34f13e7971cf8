"""``python -m gnode <command>``: run any job of the workflow by hand, or check results and config.

A registry of subcommands: ``verify``, ``check-config``, and one per job of :mod:`gnode.jobs`
(``train-flipflop``, ``plot-flipflop``, ...), generated from that registry. Each subcommand
registers a function that adds its arguments to a parser and returns the function run with the
parsed arguments (its return value is the exit status).

A job's settings are planned from the config exactly as the Snakefile plans them
(:mod:`gnode.plan`; ``--config`` files overlay ``--base`` like ``snakemake --configfile``, and
the wildcards are given as options), or read from a JSON/YAML file (``--settings``);
``--print-settings`` shows them. Paths: ``--<input>`` and ``--<output>-out``::

    python -m gnode train-flipflop --config config/test/config.yaml --experiment 3bit_fixed \
        --model gnode --n 6 --data results/flipflop/data/3bit.parquet \
        --model-out model.pt --history-out history.parquet
"""

from __future__ import annotations

import argparse
import json
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


@command("compare", "compare two runs' Parquet tables value by value (timing columns and provenance aside)")
def _compare(p: argparse.ArgumentParser):
    p.add_argument("first", help="a results folder")
    p.add_argument("second", help="another results folder")
    p.add_argument("--atol", type=float, default=0.0, help="absolute tolerance on floats (default 0: identical)")
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance on floats (default 0)")

    def run(args) -> int:
        from gnode import compare

        for root in (args.first, args.second):
            if not Path(root).is_dir():
                print(f"compare: {root}: no such folder", file=sys.stderr)
                return 2
        diffs, n = compare.compare_folders(args.first, args.second, atol=args.atol, rtol=args.rtol)
        for d in diffs:
            print(f"DIFFERS  {d.path}: {d.problem}")
        print(f"compare: {n} tables in both, {len({d.path for d in diffs})} differ "
              f"(ignoring {', '.join(sorted(compare.TIMING_COLUMNS))} and the provenance)")
        return 1 if diffs else 0

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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _read_settings(job, path: str) -> dict:
    """``{param: value}`` from a JSON/YAML file: the value itself for a job with one settings
    argument, else a mapping of every one (as ``--print-settings`` writes them)."""
    import yaml

    from gnode.config import ConfigError

    try:
        data = yaml.safe_load(Path(path).read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"--settings {path}: {err}") from None
    if len(job.params) == 1 and not (isinstance(data, dict) and set(data) == set(job.params)):
        return {job.params[0]: data}
    if not isinstance(data, dict) or set(data) != set(job.params):
        raise ConfigError(f"--settings {path}: expected a mapping with the keys {', '.join(job.params)}")
    return data


def _planned_settings(job, args, wildcards: dict) -> dict:
    """The job's settings: from ``--settings``, else planned from the config (gnode.plan)."""
    from gnode.config import ConfigError

    if not job.params:
        if args.settings:
            raise ConfigError(f"{job.command} takes no settings")
        return {}
    if args.settings:
        return _read_settings(job, args.settings)
    from gnode import plan
    from gnode.config import load_config_files

    files = [args.base, *args.config]
    cfg = load_config_files(files)
    try:
        return plan.job_params(job.name, cfg, wildcards)
    except ValueError as err:  # a wildcard not given
        raise ConfigError(str(err).replace(job.name, job.command, 1) + " (" + ", ".join(
            _flag(w) for w in job.wildcards) + ")") from None
    except KeyError as err:  # an experiment, task or model that the config does not have
        raise ConfigError(f"{job.command}: {err.args[0]!r} is not in the config ({', '.join(files)})") from None


def _job_command(job):
    """The subcommand of one :class:`gnode.jobs.Job`: settings, wildcards, input and output paths."""

    def setup(p: argparse.ArgumentParser):
        g = p.add_argument_group("settings (planned from the config as the Snakefile plans them, or read from a file)")
        if job.params:
            g.add_argument("--settings", metavar="FILE", help="JSON or YAML file of the settings (instead of the config)")
            g.add_argument("--config", metavar="FILE", action="append", default=[],
                           help="config file overlaid on --base, in order (as snakemake --configfile); repeatable")
            g.add_argument("--base", default="config/config.yaml", metavar="FILE", help="the base config file")
            g.add_argument("--print-settings", action="store_true", help="print the settings as JSON and stop")
        else:
            p.set_defaults(settings=None, print_settings=False)
        for name, kind in job.wildcards.items():
            needed = "the job's own argument" if name in job.takes else "to plan its settings"
            g.add_argument(_flag(name), dest=f"wc_{name}", type=kind, metavar=kind.__name__.upper(),
                           help=f"wildcard {name} ({needed})")
        io = p.add_argument_group("files")
        for name in job.inputs:
            many = name in job.lists
            io.add_argument(_flag(name), dest=f"in_{name}", nargs="+" if many else None, metavar="PATH",
                            help="input files" if many else "input file")
        for name in job.outputs:
            io.add_argument(_flag(name) + "-out", dest=f"out_{name}", metavar="PATH", help="output file")
        if job.resumable:
            io.add_argument("--checkpoints", metavar="DIR", help="folder to checkpoint to and resume from")
        p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
        p.add_argument("--log", metavar="FILE", help="also write the log here")

        def run(args) -> int:
            from gnode.config import ConfigError

            wildcards = {w: getattr(args, f"wc_{w}") for w in job.wildcards}
            try:
                settings = _planned_settings(job, args, wildcards)
            except ConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            if args.print_settings:
                print(json.dumps(settings, indent=2))
                return 0
            paths = {f"in_{n}": n for n in job.inputs} | {f"out_{n}": n for n in job.outputs}
            missing = [_flag(w) for w in job.takes if wildcards[w] is None]
            missing += [_flag(n) + ("-out" if d.startswith("out_") else "") for d, n in paths.items()
                        if getattr(args, d) is None]
            if missing:
                print(f"error: {job.command} needs {', '.join(missing)}", file=sys.stderr)
                return 2
            from gnode import codegraph
            from gnode.runtime import setup_job

            setup_job(args.threads, args.log)
            kwargs = {n: getattr(args, f"in_{n}") for n in job.inputs}
            kwargs |= {f"out_{n}": getattr(args, f"out_{n}") for n in job.outputs}
            if job.resumable:
                # the hash a workflow script of this job gets (the same modules): checkpoints
                # written by Snakemake and by hand resume each other only with the same code
                kwargs |= {"checkpoints": args.checkpoints,
                           "code": codegraph.code_hash("gnode.runtime", f"gnode.jobs:{job.name}")}
            try:
                job.run(*(settings[p] for p in job.params), *(wildcards[w] for w in job.takes), **kwargs)
            except ConfigError as err:  # settings (from --settings) that do not validate
                print(f"error: {err}", file=sys.stderr)
                return 2
            return 0

        return run

    return setup


def _register_jobs() -> None:
    from gnode.jobs import JOBS

    for job in JOBS.values():
        command(job.command, f"job: {job.summary}")(_job_command(job))


_register_jobs()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gnode", description=__doc__.splitlines()[0],
                                     epilog="python -m gnode <command> --help: the arguments of one command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    runners = {}
    for name, (help_, setup) in COMMANDS.items():
        runners[name] = setup(sub.add_parser(name, help=help_, description=help_))
    args = parser.parse_args(argv)
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
