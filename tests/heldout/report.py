"""Blind held-out sets of realistic wrong answers for the checks of Chapters 01, 02 and 05, and their report.

Each wrong answer in ``wrong_ch0N.py`` (the first set) and ``blind_ch0N.py`` (the second) is written as a learner
writes the exercise cell, with one plausible bug, and registered here with ``@wrong(...)``: the exercise, a one-line
description, and ``names``, regular expressions (case-insensitive) that a helpful diagnosis of *that* mistake would
match. Each set was written without reading the checks, so it measures how well they generalise beyond the catalogue
of mistakes their own tests know; the first has since been used as a development set (see ``SETS``).

    .venv/bin/python -m tests.heldout.report                      # the checks of this checkout
    .venv/bin/python -m tests.heldout.report --root /other/checkout  # `utils` imported from another checkout
    .venv/bin/python -m tests.heldout.report --set second            # one set only

Each answer is classified as ``passed`` (not rejected: the worst), ``crashed`` (the check raised something other
than CheckFailure / LearnerError / NotImplementedError: an internal error, or it ran past the time limit),
``named`` (rejected with a message that matches ``names``) or ``unnamed`` (rejected, but the message does not say
what is wrong). The report always exits 0. Before matching, backquoted lines of the learner's own code that a
message quotes back are blanked (they say where, not what); tests/test_heldout.py checks that no pattern matches
generic text (a bare difference, a case's label, a menu of causes attached to every error of a kind).

This module imports neither torch nor ``utils`` at import time, so ``--root`` can choose which ``utils`` is loaded.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import io
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Two sets, each written blind to the checks of its time: "first" (109 answers, before the checks were rewritten on
# the toolkit; since used as a development set while improving them) and "second" (94 answers, written after that
# work by someone who never read the checks nor saw a message, and never tuned on).
SETS = {
    "first": {"01": "tests.heldout.wrong_ch01", "02": "tests.heldout.wrong_ch02", "05": "tests.heldout.wrong_ch05"},
    "second": {"01": "tests.heldout.blind_ch01", "02": "tests.heldout.blind_ch02", "05": "tests.heldout.blind_ch05"},
    "third": {"01": "tests.heldout.third_ch01", "02": "tests.heldout.third_ch02", "05": "tests.heldout.third_ch05"},
    "fourth": {"01": "tests.heldout.fourth_ch01", "02": "tests.heldout.fourth_ch02", "05": "tests.heldout.fourth_ch05"},
    "fifth": {"01": "tests.heldout.fifth_ch01", "02": "tests.heldout.fifth_ch02", "05": "tests.heldout.fifth_ch05"},
    "sixth": {"01": "tests.heldout.sixth_ch01", "02": "tests.heldout.sixth_ch02", "05": "tests.heldout.sixth_ch05"},
    # the chapters written after issue 8, each set written blind once the chapter's exercises existed
    "seventh": {"03": "tests.heldout.seventh_ch03", "04": "tests.heldout.seventh_ch04",
                "06": "tests.heldout.seventh_ch06", "07": "tests.heldout.seventh_ch07",
                "08": "tests.heldout.seventh_ch08", "09": "tests.heldout.seventh_ch09",
                "10": "tests.heldout.seventh_ch10", "12": "tests.heldout.seventh_ch12"},
}
CHAPTERS = sorted({chapter for chapters in SETS.values() for chapter in chapters})  # a set need not cover them all
TIMEOUT_S = 90  # per wrong answer; a check that needs longer than this is itself a defect


@dataclass
class WrongAnswer:
    chapter: str  # "01"
    exercise: str  # "1.4"
    check: str  # the name of the check function in utils.checks.<module>
    key: str  # a unique id: the exercise and the answer's own name, e.g. "1.4-MultiHeadTriu"
    description: str  # one line: what the learner got wrong
    names: tuple[str, ...]  # regexes (case-insensitive); the diagnosis names the mistake if any matches
    obj: Any  # the learner's function or class
    arguments: Callable[[Any], tuple]  # obj -> the positional arguments of the check
    late: bool = False  # mutates objects it is given: run after the others of its chapter
    held_out_set: str = "first"  # which of SETS it belongs to (set by load)

    def call(self, module):
        return getattr(module, self.check)(*self.arguments(self.obj))

    def is_named(self, message: str) -> bool:
        message = without_echo(message, self.obj)
        return any(re.search(pattern, message, re.IGNORECASE) for pattern in self.names)


def without_echo(message: str, obj) -> str:
    """The message without the `quoted` lines of the learner's own code that it echoes: quoting the line that
    failed says where, not what, so a pattern must not match the mistake's own code (``k.T``, ``t[0]``)."""
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return message

    def bare(line):  # without indentation and a trailing line continuation
        return line.strip().rstrip("\\").strip()
    lines = {bare(line) for line in source.splitlines() if bare(line)}
    return re.sub(r"`([^`]*)`", lambda quoted: "`…`" if bare(quoted.group(1)) in lines else quoted.group(0), message)


@dataclass
class Registry:
    chapter: str
    exercises: dict[str, tuple[str, str]]  # exercise -> (check name, the learner's name for the object)
    answers: list[WrongAnswer] = field(default_factory=list)

    def wrong(self, exercise: str, description: str, *, names, arguments=None, late: bool = False,
              learner_name: str | None = None):
        """Register the decorated function or class as a wrong answer to ``exercise``.

        ``arguments`` maps the object to the check's positional arguments (default: the object alone);
        ``late`` runs it after the chapter's other answers, for one that mutates what the check gives it."""
        check, default_name = self.exercises[exercise]
        learner_name = learner_name or default_name
        names = (names,) if isinstance(names, str) else tuple(names)
        for pattern in names:
            re.compile(pattern)

        def register(obj):
            key = f"{exercise}-{obj.__name__}"
            assert all(a.key != key for a in self.answers), f"duplicate wrong answer {key}"
            self.answers.append(WrongAnswer(self.chapter, exercise, check, key, description, names, obj,
                                            arguments or (lambda o: (o,)), late))
            obj.__name__ = learner_name  # what the learner's cell would have called it (qualname kept for pickle)
            return obj
        return register

    def ordered(self) -> list[WrongAnswer]:
        return [a for a in self.answers if not a.late] + [a for a in self.answers if a.late]


class CheckTimeout(BaseException):
    """Raised by the alarm; a BaseException so that a check's ``except Exception`` does not swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    if not hasattr(signal, "setitimer"):  # no alarms (Windows): run unguarded
        yield
        return

    def on_alarm(signum, frame):
        raise CheckTimeout(f"the check ran longer than {seconds:.0f} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    answer: WrongAnswer
    status: str  # passed | crashed | named | unnamed
    message: str
    seconds: float
    error: str = ""  # the name of the exception's class, if the check raised
    by_check: bool = False  # the check raised CheckFailure or LearnerError (or a subclass)


def run_answer(answer: WrongAnswer, timeout: float = TIMEOUT_S) -> Outcome:
    """Run one wrong answer through its check and classify the result."""
    from utils.checks import CheckFailure, LearnerError
    module = importlib.import_module(f"utils.checks.{CHECK_MODULES[answer.chapter]}")
    start = time.perf_counter()
    printed = io.StringIO()
    try:
        with time_limit(timeout), contextlib.redirect_stdout(printed):
            answer.call(module)
    except (CheckFailure, LearnerError, NotImplementedError) as error:
        message, raised = str(error), error
        status = "named" if answer.is_named(message) else "unnamed"
    except CheckTimeout as error:
        status, message, raised = "crashed", f"CheckTimeout: {error}", error
    except Exception as error:  # noqa: BLE001 - an internal error of the check is what we report
        status, message, raised = "crashed", f"{type(error).__name__}: {error}", error
    else:
        status, message, raised = "passed", printed.getvalue().strip(), None
    error = "" if raised is None else type(raised).__name__
    by_check = isinstance(raised, (CheckFailure, LearnerError))
    return Outcome(answer, status, message, time.perf_counter() - start, error, by_check)


CHECK_MODULES = {"01": "attention", "02": "normalization", "03": "mixture_of_experts", "04": "clip", "05": "diffusion",
                 "06": "switch_transformer", "07": "architecture_search", "08": "hybrid_video",
                 "09": "minimalist", "10": "distributed",
                 "12": "on_device"}


def load(chapters=tuple(CHAPTERS), sets=tuple(SETS)) -> list[WrongAnswer]:
    """Import the wrong answers of ``sets`` (this imports `utils`, through the solution notebooks' setup cells)."""
    answers = []
    for name in sets:
        for chapter in (chapter for chapter in chapters if chapter in SETS[name]):
            for answer in importlib.import_module(SETS[name][chapter]).REGISTRY.ordered():
                answer.held_out_set = name
                answers.append(answer)
    return answers


THIS_CHECKOUT = Path(__file__).resolve().parents[2]


def solution_namespace(chapter: str, definitions: tuple[str, ...] = ()) -> dict:
    """The reference solutions of ``solutions/<chapter>.md`` of *this* checkout, by tests/solution_code.py's
    ``solution_namespace``. That module is loaded from its file here, not as ``tests.solution_code``, which
    ``--root`` could resolve to the other checkout's copy; if it cannot be imported with the ``utils`` in use (an
    older checkout without what it imports), the same cells are read here directly."""
    path = THIS_CHECKOUT / "tests" / "solution_code.py"
    module = sys.modules.get("tests.solution_code")
    if module is None or Path(getattr(module, "__file__", "")).resolve() != path:
        spec = importlib.util.spec_from_file_location("_heldout_solution_code", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError:
            return _read_solution_cells(chapter, definitions)
    return module.solution_namespace(chapter, definitions)


def _read_solution_cells(chapter: str, definitions: tuple[str, ...]) -> dict:
    """What tests/solution_code.py's solution_namespace runs: the setup cell, the chosen definitions, the
    ``exercise-N.M`` cells."""
    import jupytext
    path = THIS_CHECKOUT / "solutions" / f"{chapter}.md"
    notebook = jupytext.read(path)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    wanted = [code[0]]
    wanted += [source.split("\n\n\n")[0] for source in code if definitions and source.startswith(definitions)]
    wanted += [c.source for c in notebook.cells if c.cell_type == "code"
               and any(re.fullmatch(r"exercise-\d+\.\d+", tag) for tag in c.metadata.get("tags", []))]
    namespace: dict = {}
    for source in wanted:
        exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - this checkout's own notebook
    return namespace


def use_root(root: str | None) -> str:
    """Put ``root`` first on sys.path so that ``import utils`` finds that checkout's; return utils.__file__."""
    if root is not None:
        root = str(Path(root).resolve())
        if not (Path(root) / "utils" / "checks" / "__init__.py").exists():
            raise SystemExit(f"--root {root}: no utils/checks package there")
        if "utils" in sys.modules:
            raise SystemExit("utils was imported before --root could take effect")
        sys.path.insert(0, root)
    import utils
    import utils.checks
    if root is not None and not Path(utils.__file__).resolve().is_relative_to(root):
        raise SystemExit(f"expected utils from {root} but imported {utils.__file__}")
    return utils.__file__


def table(outcomes: list[Outcome]) -> str:
    rows = [f"{'chapter':<8}{'answers':>8}{'rejected':>10}{'named':>7}{'passed':>8}{'crashed':>9}"
            f"{'rejected %':>12}{'named %':>9}"]
    groups: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.answer.chapter, []).append(outcome)
    groups["all"] = outcomes
    for chapter, group in groups.items():
        count = len(group)
        rejected = sum(o.status in ("named", "unnamed") for o in group)
        named = sum(o.status == "named" for o in group)
        passed = sum(o.status == "passed" for o in group)
        crashed = sum(o.status == "crashed" for o in group)
        rows.append(f"{chapter:<8}{count:>8}{rejected:>10}{named:>7}{passed:>8}{crashed:>9}"
                    f"{100 * rejected / max(count, 1):>11.0f}%{100 * named / max(count, 1):>8.0f}%")
    return "\n".join(rows)


def per_exercise(outcomes: list[Outcome]) -> str:
    counts: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = counts.setdefault(o.answer.exercise, {"named": 0, "unnamed": 0, "passed": 0, "crashed": 0})
        row[o.status] += 1
    lines = [f"{'exercise':<9}{'answers':>8}{'named':>7}{'unnamed':>9}{'passed':>8}{'crashed':>9}"]
    for exercise in sorted(counts, key=lambda e: tuple(int(p) for p in e.split("."))):
        row = counts[exercise]
        lines.append(f"{exercise:<9}{sum(row.values()):>8}{row['named']:>7}{row['unnamed']:>9}{row['passed']:>8}"
                     f"{row['crashed']:>9}")
    return "\n".join(lines)


def report(answers: list[WrongAnswer], args) -> None:
    outcomes = []
    for answer in answers:
        outcome = run_answer(answer, args.timeout)
        outcomes.append(outcome)
        print(f"  {outcome.status:<8} {outcome.seconds:5.1f}s  {answer.key}", flush=True)
    print()
    print(table(outcomes))
    print()
    print(per_exercise(outcomes))
    for status in ("passed", "crashed", "unnamed") + (("named",) if args.show_named else ()):
        listed = [o for o in outcomes if o.status == status]
        if listed:
            print(f"\n{status.upper()} ({len(listed)}):")
        for o in listed:
            message = " ".join(o.message.split())[:300]
            print(f"- [{o.answer.key}] {o.answer.description}\n    message: {message or '(none)'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="a checkout of the repository whose `utils` to test (default: this one)")
    parser.add_argument("--chapter", action="append", choices=sorted(CHAPTERS), help="only these chapters")
    parser.add_argument("--set", action="append", choices=sorted(SETS), dest="sets",
                        help="only this set (first or second; default: both, reported apart)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per wrong answer")
    parser.add_argument("-k", dest="pattern", help="only the answers whose key contains this")
    parser.add_argument("--show-named", action="store_true", help="also list the named ones, to audit `names`")
    args = parser.parse_args(argv)

    print(f"utils imported from {use_root(args.root)}")
    for name in args.sets or SETS:
        answers = load(tuple(args.chapter or CHAPTERS), (name,))
        if args.pattern:
            answers = [a for a in answers if args.pattern in a.key]
        print(f"\n=== the {name} held-out set ({len(answers)} answers)")
        report(answers, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
