"""The ``hackrisk`` command.

``hackrisk demo``                   the embedded default study, end to end
``hackrisk validate STUDY.toml``    check a study file
``hackrisk annotate STUDY.toml``    annotate the multiverse (resumable: re-run after Ctrl-C)
``hackrisk analyze STUDY.toml``     hypotheses, tests, risks, hacking, mitigation (+ [human] corrections)
``hackrisk suggest STUDY.toml``     which items to label by hand next (--n 200 --scheme active -o to_label.csv)
``hackrisk report STUDY.toml``      figures and the HTML report
``hackrisk explore STUDY.toml``     how to open the explorer in Jupyter
``hackrisk package STUDY.toml -o DIR``  a self-contained replication package (--zip for one file)
``hackrisk verify DIR``             check a replication package: checksums, analysis re-run, every number

``validate``, ``annotate``, ``analyze``, ``report`` and ``explore`` also take a suite file (one
``[[tasks]]`` table per task, e.g. ``hackrisk/studies/paper-tasks.toml``; see ``hackrisk.suite``):
every task in turn into ``<output>/<task>``, then the cross-task results in ``<output>``.

Exit codes: 0 success, 1 unexpected failure (a bug: please report it), 2 a failure with a
one-line reason and fix (study file, data, arguments, server, store, missing labels), 130
interrupted (nothing is lost: the next run resumes). ``--debug`` shows the traceback. ``verify``
exits 2 when a file or a number of the package differs, naming it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from importlib import resources
from pathlib import Path

from .study import Study, StudyError, load_study, parse_study

__all__ = ["main"]

logger = logging.getLogger("hackrisk")


def _demo_study(args: argparse.Namespace) -> Study:
    text = resources.files("hackrisk").joinpath("studies/demo.toml").read_text(encoding="utf-8")
    output = Path(args.output).resolve()
    study = parse_study(text, output / "demo.toml")
    changes: dict = {"output": output}
    data = dict(study.data)
    if args.items is not None:
        data["n_items"] = args.items
        changes["analysis"] = dict(study.analysis, budgets_given=False)  # the demo's budgets shrink with --items
    if args.source:
        data["source"] = str(Path(args.source).resolve())
    changes["data"] = data
    if args.model:
        changes["models"] = [dict(m, model=args.model) for m in study.models]
    if args.prompts is not None:
        if args.prompts > len(study.task["prompts"]):
            raise StudyError(f"--prompts {args.prompts}: the demo has {len(study.task['prompts'])} prompts. "
                             f"Fix: use --prompts 1..{len(study.task['prompts'])}.")
        changes["task"] = dict(study.task, prompts=study.task["prompts"][: args.prompts])
    if args.temperatures is not None:
        changes["temperatures"] = args.temperatures
    from dataclasses import replace

    return replace(study, **changes)


def _print_headline(study: Study, res: dict, report: Path | None, quiet: bool) -> None:
    from .pipeline import headline

    h = headline(res)
    if quiet:
        return
    pct = lambda d: f"{100 * d['estimate']:.1f}% [{100 * d['lower']:.1f}, {100 * d['upper']:.1f}]"  # noqa: E731
    print(f"\n{study.name}: {h['n_hypotheses']} hypotheses × {h['n_configurations']} configurations")
    if "n_configurations_total" in h:
        print(f"  INCOMPLETE: only {h['n_configurations']} of {h['n_configurations_total']} configurations are fully "
              "annotated; the others are left out (--allow-incomplete)")
    print(f"  human-label conclusions significant: {100 * h['human_significant_share']:.1f}%")
    for key, label in (("risk_balanced", "LLM hacking risk (balanced)"), ("type_i", "Type I"),
                       ("type_ii", "Type II"), ("type_s", "Type S")):
        if key in h:
            print(f"  {label:<28} {pct(h[key])}")
    for key in ("fabricate_rate", "hide_rate", "reverse_rate"):
        if key in h:
            print(f"  {key.replace('_rate', '') + ' a finding':<28} {100 * h[key]:.1f}% of hypotheses")
    if "verdicts" in h:
        parts = ", ".join(f"{n} {v}" for v, n in h["verdicts"].items())
        print(f"  with human labels ({h.get('corrected_method', '')}): {parts}")
    print(f"  results: {study.output}")
    if report is not None:
        print(f"  report:  {report}")


def _verify(args: argparse.Namespace) -> int:
    from .package import verify_package

    result = verify_package(args.package)
    if not args.quiet or not result.ok:
        print(result)
    if not result.ok:
        print(f"hackrisk: the package {args.package} does not verify: {result.problems[0]}"
              f"{f' (and {len(result.problems) - 1} more)' if len(result.problems) > 1 else ''}. Fix: restore the "
              "changed files from the original package, or re-make it with `hackrisk package`.", file=sys.stderr)
        return 2
    return 0


def _package(study: Study, args: argparse.Namespace) -> Path:
    from .package import package

    t0 = time.perf_counter()
    path = package(study, args.output, zip=args.zip, overwrite=args.overwrite,
                   execute=not getattr(args, "no_execute", False))
    if not args.quiet:
        folder = Path(args.output).resolve()
        print(f"replication package: {path} ({time.perf_counter() - t0:.1f} s)\n"
              f"  a reviewer runs:  hackrisk verify {path}\n"
              f"  the report:       {folder / 'report.html'}\n"
              f"  the notebook:     jupyter lab {folder / 'replicate.ipynb'}")
    return path


def _is_suite(path: str | Path) -> bool:
    """Whether ``path`` is a suite file (``[[tasks]]`` tables; see :mod:`hackrisk.suite`)."""
    from .suite import tomllib

    try:
        return "tasks" in tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False  # load_study reports the problem


def _run(args: argparse.Namespace) -> int:
    from . import pipeline

    if args.command == "verify":
        return _verify(args)
    if args.command in _SUITE_COMMANDS and _is_suite(args.study):  # a suite file: [[tasks]] (hackrisk.suite)
        return _run_suite(args)
    if args.command == "demo":
        study = _demo_study(args)
    else:
        study = load_study(args.study)
    if getattr(args, "allow_incomplete", False):
        from dataclasses import replace

        study = replace(study, analysis=dict(study.analysis, allow_incomplete=True))
    if args.command in ("validate", "annotate", "demo"):
        from .study import check_inputs, check_output

        td = check_inputs(study)  # the same checks annotate and analyze run: a valid study does not fail later
        check_output(study)
    if args.command == "validate":
        print(f"{args.study}: valid ({len(td.items)} items, {len(study.models)} model(s), "
              f"{len(study.temperatures)} temperature(s)).")
        return 0
    if args.command == "suggest":
        path, table = pipeline.suggest_study(study, n=args.n, scheme=args.scheme, output=args.output)
        if not args.quiet:
            n_new = int((table["status"] == "to label").sum())
            print(f"{n_new} item(s) to label ({args.scheme}) written to {path}\n"
                  "  fill in the label column (class names), then add to the study file:\n"
                  f"    [human]\n    labels = \"{path.resolve()}\"\n  and run `hackrisk analyze`.")
        return 0
    if args.command == "package":
        _package(study, args)
        return 0
    if args.command == "explore":
        print("In Jupyter (after `hackrisk analyze` has written the results):\n"
              "    import xarray as xr\n"
              "    from hackrisk.widgets import explore\n"
              f"    explore(xr.open_dataset({str(study.output / 'tests.nc')!r}))\n"
              f"or with the extension: %load_ext hackrisk, then %hackrisk explore {study.output / 'tests.nc'}")
        if study.human:
            corr = study.output / f"corrected_{next(iter(study.human['methods']))}.nc"
            print("With your human labels, the corrected interval of every configuration beside the LLM-only one:\n"
                  f"    explore(xr.open_dataset({str(study.output / 'tests.nc')!r}), "
                  f"corrected=xr.open_dataset({str(corr)!r}))")
        return 0
    t0 = time.perf_counter()
    t_start, t_annotated = time.time(), 0.0
    cube = None
    if args.command in ("annotate", "demo"):
        cube = pipeline.annotate_study(study, progress=not args.quiet)
        t_annotated = time.perf_counter() - t0
        from .annotate.runner import missing_labels

        missing = missing_labels(cube)
        if len(missing):
            print(f"hackrisk: annotate finished with {_missing_text(missing)}", file=sys.stderr)
            if not (args.command == "demo" and args.allow_incomplete):
                return 2
        if args.command == "annotate":
            if not args.quiet:
                print(f"annotated: {study.cube_path} ({time.perf_counter() - t0:.1f} s)")
            return 0
    if args.command == "analyze":
        res = pipeline.analyze_study(study, cube)
        _print_headline(study, res, None, args.quiet)
        return 0
    if args.command in ("report", "demo"):
        res = pipeline.analyze_study(study, cube)
        report = pipeline.report_study(study, res, cube)
        _print_headline(study, res, report, args.quiet)
        if args.command == "demo" and not args.no_package:
            from types import SimpleNamespace

            _package(study, SimpleNamespace(output=study.output / "package", zip=False, overwrite=True,
                                            quiet=args.quiet))
        if not args.quiet:
            print(f"  total time: {time.perf_counter() - t0:.1f} s")
            if args.command == "demo":
                print(_time_split(t_start, t_annotated, time.perf_counter() - t0))
        return 0
    raise AssertionError(args.command)


def _missing_text(missing) -> str:
    """What is missing after annotate (a :func:`hackrisk.annotate.runner.missing_labels` table) and the fix."""
    names = ", ".join(f"{r.model}/{r.prompt}/T={r.temperature:g} ({r.n_missing})" for r in missing.head(5).itertuples())
    return (f"{int(missing['n_missing'].sum())} label(s) missing in {len(missing)} configuration(s): {names}"
            f"{' ...' if len(missing) > 5 else ''} (failed requests; see the warnings above). Fix: re-run "
            "`hackrisk annotate` (failures are never cached and are asked again).")


_SUITE_COMMANDS = ("validate", "annotate", "analyze", "report", "explore")


def _run_suite(args: argparse.Namespace) -> int:
    """``validate / annotate / analyze / report / explore`` of a suite file (:mod:`hackrisk.suite`)."""
    from . import suite

    path, quiet = args.study, args.quiet
    if args.command == "validate":
        rows = suite.validate_suite(path)
        for r in rows:
            print(f"  {r['task']}: {r['items']} items, {r['prompts']} prompt(s), {r['temperatures']} temperature(s)")
        print(f"{path}: valid suite ({len(rows)} tasks, {sum(r['labels'] for r in rows)} labels to annotate; "
              f"run it with `hackrisk annotate {path}`).")
        return 0
    root = suite.suite_output(path)
    if args.command == "explore":
        tests = root / "suite_tests.nc"
        print("In Jupyter (after `hackrisk analyze` of the suite has written the results):\n"
              "    import xarray as xr\n"
              "    from hackrisk.widgets import explore\n"
              f"    explore(xr.open_dataset({str(tests)!r}))             # every task; pick one in the task menu\n"
              f"    explore(xr.open_dataset({str(tests)!r}), task=\"<task>\")  # one task\n"
              f"Per task: {root / '<task>' / 'tests.nc'}; the table of risk per task: {root / 'tables' / 'task_risk.csv'}")
        return 0
    t0 = time.perf_counter()
    if args.command == "annotate":
        from .annotate.runner import missing_labels

        incomplete = []
        for study, cube, seconds in suite.annotate_suite(path, progress=not quiet):
            missing = missing_labels(cube)
            if len(missing):
                incomplete.append(f"{study.task['name']}: {_missing_text(missing)}")
            if not quiet:
                n = int((cube["label"] != -1).sum())
                print(f"  {study.task['name']}: {n} labels ({seconds:.1f} s) -> {study.cube_path}", flush=True)
        for line in incomplete:
            print(f"hackrisk: annotate finished with task {line}", file=sys.stderr)
        if not quiet:
            print(f"annotated: {root} (total {time.perf_counter() - t0:.1f} s)")
        return 2 if incomplete else 0
    allow = getattr(args, "allow_incomplete", False)
    res = suite.analyze_suite(path, allow_incomplete=allow)
    report = suite.report_suite(path, res) if args.command == "report" else None
    if not quiet:
        table = res["summary"]["task_table"]
        print(f"\n{path}: {len(res['results'])} task(s), {res['json']['n_hypotheses']} hypotheses; "
              "LLM hacking risk (balanced) per task, highest first:")
        for r in table.itertuples():
            if r.risk_balanced == r.risk_balanced:
                print(f"  {r.task:<24} {100 * r.risk_balanced:5.1f}% [{100 * r.risk_balanced_lower:.1f}, "
                      f"{100 * r.risk_balanced_upper:.1f}]")
            else:
                print(f"  {r.task:<24}   n/a (Type I or Type II undefined: no null or no significant human "
                      "conclusion)")
        for name in res["left_out"]:
            print(f"  {name:<24}   left out: no hypothesis could be formed (raise its n_items; reasons in "
                  "suite_summary.json)")
        print(f"  results: {root} (suite_tests.nc, tables/, suite_summary.json)")
        if report is not None:
            print(f"  report:  {report}")
        print(f"  total time: {time.perf_counter() - t0:.1f} s")
    return 0


def _time_split(t_start: float, annotation: float, total: float) -> str:
    """``time split: set-up / annotation / analysis``; set-up from ``HACKRISK_DEMO_T0`` (the epoch
    seconds at which ``make demo`` started, set by the Makefile) to the start of the study."""
    import os

    t0 = os.environ.get("HACKRISK_DEMO_T0", "")
    try:
        setup = f"{t_start - float(t0):.0f} s"
    except ValueError:
        setup = "not measured (run `make demo`)"
    return (f"  time split: set-up {setup} / annotation {annotation:.0f} s / "
            f"analysis {total - annotation:.0f} s")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hackrisk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    common.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", parents=[common], help="run the embedded default study end to end")
    demo.add_argument("--output", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--items", type=_at_least(2), default=None,
                      help="number of items, at least 2 (default: the study's); budgets above 70%% of them are left out")
    demo.add_argument("--allow-incomplete", action="store_true",
                      help="analyse the fully annotated configurations only, and say so")
    demo.add_argument("--source", default=None, help="VADER mirror folder or vaderSentiment sdist path")
    demo.add_argument("--model", default=None, help="model spec (default: embedded SmolLM2; 'tiny-random' for tests)")
    demo.add_argument("--prompts", type=_at_least(1), default=None, help="use only the first N prompts")
    demo.add_argument("--temperatures", type=_temperatures, default=None, help="comma-separated temperatures")
    demo.add_argument("--no-package", action="store_true",
                      help="do not write the replication package (default: <output>/package)")
    for name, text in (("validate", "check a study file"), ("annotate", "annotate the multiverse (resumable)"),
                       ("analyze", "hypotheses, tests, risks, hacking, mitigation"),
                       ("report", "figures and the self-contained HTML report"),
                       ("explore", "print how to open the explorer")):
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.add_argument("study", help="the study file (TOML; see the README, 'Study files') or a suite file "
                                     "([[tasks]]; see the README, 'The paper's tasks')")
        if name in ("analyze", "report"):
            p.add_argument("--allow-incomplete", action="store_true",
                           help="analyse the fully annotated configurations only, and say so")
    sug = sub.add_parser("suggest", parents=[common], help="which items to label by hand next (a CSV)",
                         description="Write the items to label next, with their inclusion probabilities.")
    sug.add_argument("study", help="the study file (TOML), annotated with `hackrisk annotate`")
    sug.add_argument("--n", type=_at_least(1), default=200, help="new labels per task (default 200)")
    sug.add_argument("--scheme", choices=("random", "confidence", "active"), default="active",
                     help="random sample, or more labels where the LLMs are unsure / likely wrong (default active)")
    sug.add_argument("-o", "--output", default=None, help="CSV to write (default: <output>/to_label.csv)")
    pkg = sub.add_parser("package", parents=[common], help="write a self-contained replication package",
                         description="Write the study's replication package: cube, data, study file, results, "
                                     "report, an executed notebook, the environment and SHA-256 checksums.")
    pkg.add_argument("study", help="the study file (TOML), annotated with `hackrisk annotate`")
    pkg.add_argument("-o", "--output", required=True, help="folder to write the package into")
    pkg.add_argument("--zip", action="store_true", help="also write <output>.zip")
    pkg.add_argument("--overwrite", action="store_true", help="replace an earlier package in the folder")
    pkg.add_argument("--no-execute", action="store_true",
                     help="store replicate.ipynb without executing it (no Jupyter kernel needed)")
    pkg.add_argument("--allow-incomplete", action="store_true",
                     help="package the fully annotated configurations only, and say so")
    ver = sub.add_parser("verify", parents=[common], help="check a replication package (exit 2 if anything differs)",
                         description="Check the checksums of a replication package, re-run its analysis from the "
                                     "packaged cube and study file, and compare every number.")
    ver.add_argument("package", help="the package folder (or its .zip)")
    return parser


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small: give at least {low}")
        return value

    return parse


def _temperatures(text: str) -> list[float]:
    import math

    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers, e.g. 0,0.7,1") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: temperatures must be finite and >= 0")
    return values


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hackrisk`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.INFO if args.verbose == 1 else
                                                logging.DEBUG if args.verbose > 1 else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nhackrisk: interrupted; everything annotated so far is saved, re-run to resume.", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 (every failure: one line, exit 2 or 1)
        if args.debug:
            raise
        code, line = _failure_line(err)
        print(f"hackrisk: {line}", file=sys.stderr)
        return code


def _failure_line(err: BaseException) -> tuple[int, str]:
    """Exit code and one-line reason of a failure."""
    from .annotate.backends.openai import BackendError
    from .annotate.runner import AnnotationError

    if isinstance(err, (StudyError, ValueError, TypeError, BackendError, AnnotationError)):
        return 2, " ".join(str(err).split())
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return 2, (f"{where}{err.strerror or err}. Fix: check that the path exists and that you may read / "
                   "write it (e.g. [study] output).")
    return 1, (f"unexpected error ({type(err).__name__}: {' '.join(str(err).split())[:300]}). Run again with "
               "--debug for the traceback, and please report it.")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

