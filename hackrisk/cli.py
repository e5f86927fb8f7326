"""The ``hackrisk`` command.

``hackrisk demo``                   the embedded default study, end to end
``hackrisk validate STUDY.toml``    check a study file
``hackrisk annotate STUDY.toml``    annotate the multiverse (resumable: re-run after Ctrl-C)
``hackrisk analyze STUDY.toml``     hypotheses, tests, risks, hacking, mitigation
``hackrisk report STUDY.toml``      figures and the HTML report
``hackrisk explore STUDY.toml``     how to open the explorer in Jupyter

Exit codes: 0 success, 1 unexpected failure, 2 invalid input (study file, data, arguments),
130 interrupted (nothing is lost: the next run resumes).
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
    if args.items:
        data["n_items"] = args.items
    if args.source:
        data["source"] = str(Path(args.source).resolve())
    changes["data"] = data
    if args.model:
        changes["models"] = [dict(m, model=args.model) for m in study.models]
    if args.prompts:
        changes["task"] = dict(study.task, prompts=study.task["prompts"][: args.prompts])
    if args.temperatures:
        changes["temperatures"] = [float(t) for t in args.temperatures.split(",")]
    from dataclasses import replace

    return replace(study, **changes)


def _print_headline(study: Study, res: dict, report: Path | None, quiet: bool) -> None:
    from .pipeline import headline

    h = headline(res)
    if quiet:
        return
    pct = lambda d: f"{100 * d['estimate']:.1f}% [{100 * d['lower']:.1f}, {100 * d['upper']:.1f}]"  # noqa: E731
    print(f"\n{study.name}: {h['n_hypotheses']} hypotheses × {h['n_configurations']} configurations")
    print(f"  human-label conclusions significant: {100 * h['human_significant_share']:.1f}%")
    for key, label in (("risk_balanced", "LLM hacking risk (balanced)"), ("type_i", "Type I"),
                       ("type_ii", "Type II"), ("type_s", "Type S")):
        if key in h:
            print(f"  {label:<28} {pct(h[key])}")
    for key in ("fabricate_rate", "hide_rate", "reverse_rate"):
        if key in h:
            print(f"  {key.replace('_rate', '') + ' a finding':<28} {100 * h[key]:.1f}% of hypotheses")
    print(f"  results: {study.output}")
    if report is not None:
        print(f"  report:  {report}")


def _run(args: argparse.Namespace) -> int:
    from . import pipeline

    if args.command == "demo":
        study = _demo_study(args)
    else:
        study = load_study(args.study)
    if args.command == "validate":
        print(f"{args.study}: valid ({len(study.models)} model(s), {len(study.temperatures)} temperature(s)).")
        return 0
    if args.command == "explore":
        print("In Jupyter (after `hackrisk analyze` has written the results):\n"
              "    import xarray as xr\n"
              "    from hackrisk.widgets import explore\n"
              f"    explore(xr.open_dataset({str(study.output / 'tests.nc')!r}))\n"
              f"or with the extension: %load_ext hackrisk, then %hackrisk explore {study.output / 'tests.nc'}")
        return 0
    t0 = time.perf_counter()
    cube = None
    if args.command in ("annotate", "demo"):
        cube = pipeline.annotate_study(study, progress=not args.quiet)
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
        if not args.quiet:
            print(f"  total time: {time.perf_counter() - t0:.1f} s")
        return 0
    raise AssertionError(args.command)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hackrisk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", parents=[common], help="run the embedded default study end to end")
    demo.add_argument("--output", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--items", type=int, default=None, help="number of items (default: the study's)")
    demo.add_argument("--source", default=None, help="VADER mirror folder or vaderSentiment sdist path")
    demo.add_argument("--model", default=None, help="model spec (default: embedded SmolLM2; 'tiny-random' for tests)")
    demo.add_argument("--prompts", type=int, default=None, help="use only the first N prompts")
    demo.add_argument("--temperatures", default=None, help="comma-separated temperatures")
    for name, text in (("validate", "check a study file"), ("annotate", "annotate the multiverse (resumable)"),
                       ("analyze", "hypotheses, tests, risks, hacking, mitigation"),
                       ("report", "figures and the self-contained HTML report"),
                       ("explore", "print how to open the explorer")):
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.add_argument("study", help="the study file (TOML); see the README, 'Study files'")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hackrisk`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.INFO if args.verbose == 1 else
                                                logging.DEBUG if args.verbose > 1 else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except StudyError as err:
        print(f"hackrisk: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nhackrisk: interrupted; everything annotated so far is saved, re-run to resume.", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        if args.verbose:
            raise
        print(f"hackrisk: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

