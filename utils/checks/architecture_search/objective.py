"""Exercise 7.5: an objective that reports validation accuracy at each rung and obeys the pruner."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import optuna

from utils.checks.architecture_search.reference import EX_OBJECTIVE
from utils.checks.core import one_thread

PARAMS = {"width": 8, "n_nodes": 2, "op_1": "conv3x3", "input_1": 0, "op_2": "skip", "input_2": 1, "lr": 0.05}
ACCURACIES = (0.31, 0.58, 0.47, 0.66, 0.72, 0.69, 0.81)  # not monotone: the last is not the best
LOSSES = (2.13, 1.71, 1.38, 1.12, 0.93, 0.88, 0.74)


@dataclass
class Scenario:
    label: str
    steps: int
    report_every: int
    prune_at: int | None  # should_prune() says True at this call (1-based), never when None

    @property
    def rounds(self) -> int:
        return self.steps // self.report_every


SCENARIOS = (
    Scenario("steps=12, report_every=4, never pruned", 12, 4, None),
    Scenario("steps=15, report_every=3, pruned at the 2nd rung", 15, 3, 2),
    Scenario("steps=5, report_every=5 (one rung), never pruned", 5, 5, None),
    Scenario("steps=20, report_every=5, pruned at the 1st rung", 20, 5, 1),
)


@dataclass
class Log:
    events: list = field(default_factory=list)  # ("build", genotype) / ("train", steps) / ("accuracy", value) / …


class RecordingTrainer:
    """Stands in for the chapter's Trainer: records what the objective asks of it, returns known numbers."""

    def __init__(self, log: Log):
        self.log, self.trained, self.scored, self.models = log, 0, 0, []

    def build(self, genotype):
        self.log.events.append(("build", genotype))
        model, optimizer = object(), object()
        self.models.append(model)
        return model, optimizer

    def train(self, model, optimizer, steps):
        loss = LOSSES[min(self.trained, len(LOSSES) - 1)]
        self.trained += 1
        self.log.events.append(("train", steps))
        return loss

    def accuracy(self, model):
        value = ACCURACIES[min(self.scored, len(ACCURACIES) - 1)]
        self.scored += 1
        self.log.events.append(("accuracy", value))
        return value


class RecordingTrial(optuna.trial.FixedTrial):
    """A FixedTrial whose report() and should_prune() are recorded; should_prune() says yes at one call."""

    def __init__(self, params: dict, log: Log, prune_at: int | None):
        super().__init__(params)
        self.log, self.prune_at, self.asked = log, prune_at, 0

    def report(self, value, step):
        self.log.events.append(("report", (value, step)))

    def should_prune(self) -> bool:
        self.asked += 1
        answer = self.prune_at is not None and self.asked >= self.prune_at
        self.log.events.append(("should_prune", answer))
        return answer


def _run(objective, trial, trainer, steps, report_every):
    try:
        return "returned", objective(trial, trainer, steps, report_every)
    except optuna.TrialPruned:
        return "pruned", None


def _named(value) -> str:
    if value in LOSSES:
        return "the training loss (what trainer.train returns)"
    return repr(value)


def _report_problem(reports: list, scenario: Scenario, accuracies: list, trains: list) -> str | None:
    if not reports:
        return ("your objective never calls trial.report(accuracy, step): without reports the pruner has nothing to "
                "compare, and no trial can be stopped early.")
    values = [r[0] for r in reports]
    steps = [r[1] for r in reports]
    done = [scenario.report_every * (k + 1) for k in range(len(reports))]
    if all(isinstance(v, (int, float)) and v in LOSSES for v in values):
        return ("you report the training loss (what trainer.train returns); report the validation accuracy, "
                "trainer.accuracy(model) — the value the study maximises, and what the pruner compares across "
                "trials.")
    if values == done or (values == [float(s) for s in done]):
        if all(isinstance(s, float) and s in ACCURACIES for s in steps):
            return ("your trial.report arguments are swapped: the value comes first, the step second — "
                    "trial.report(accuracy, step).")
        return ("you report the step as the value: trial.report(value, step) takes the accuracy first, then the "
                "number of training steps done.")
    if values and all(isinstance(v, (int, float)) and math.isclose(v, 100 * a) for v, a in zip(values, accuracies)):
        return ("you report the accuracy in percent (×100): report the fraction trainer.accuracy(model) returns, in "
                "[0, 1] — the study's values, the pruner's comparisons and the chapter's plots all use it.")
    if values != accuracies[:len(values)]:
        if len(values) == len(accuracies) and values[:-1] == accuracies[1:] and len(values) > 1:
            return "you report each accuracy before training its round: train, then measure, then report."
        return (f"you report {[_named(v) for v in values]}; the accuracies measured after each round were "
                f"{accuracies[:len(values)]}: report trainer.accuracy(model), measured after each round of training.")
    if steps != done:
        rounds = list(range(len(steps)))
        if steps == rounds or steps == [k + 1 for k in rounds]:
            return (f"you report at steps {steps} (the round's index); report the number of training steps done so "
                    f"far, {done}: rungs are defined in steps (min_resource, max_resource), and trials are compared "
                    f"at equal steps.")
        if all(s == scenario.report_every for s in steps) and len(steps) > 1:
            return (f"you report every round at step {scenario.report_every}; the step is the number of training "
                    f"steps done so far, {done}. (Reporting twice at one step keeps only the first value.)")
        return f"you report at steps {steps}; after each round of training the steps done are {done}."
    return None


@one_thread
def check_objective(objective, sample_genotype) -> None:
    """Exercise 7.5: ``objective(trial, trainer, steps, report_every)`` trains in rounds, reports the validation
    accuracy at the steps done, and raises ``optuna.TrialPruned`` when ``trial.should_prune()`` says so."""
    EX = EX_OBJECTIVE
    expected_genotype = EX.call(sample_genotype, optuna.trial.FixedTrial(PARAMS), what="sample_genotype",
                                case="the trial's genotype")
    for scenario in SCENARIOS:
        log = Log()
        trainer, trial = RecordingTrainer(log), RecordingTrial(PARAMS, log, scenario.prune_at)
        outcome, value = EX.call(_run, objective, trial, trainer, scenario.steps, scenario.report_every,
                                 what="objective", case=scenario.label)
        kinds = [kind for kind, _ in log.events]
        builds = [payload for kind, payload in log.events if kind == "build"]
        trains = [payload for kind, payload in log.events if kind == "train"]
        accuracies = [payload for kind, payload in log.events if kind == "accuracy"]
        reports = [payload for kind, payload in log.events if kind == "report"]
        fail = (lambda message: EX.fail(message, case=scenario.label))
        if len(builds) != 1:
            raise fail(f"your objective called trainer.build {len(builds)} times; build the trial's network once: "
                       f"model, optimizer = trainer.build(sample_genotype(trial)).")
        if builds[0] != expected_genotype:
            raise fail(f"you built {builds[0]!r}, not the trial's genotype {expected_genotype!r}: pass "
                       f"sample_genotype(trial) to trainer.build.")
        if trains and all(s == scenario.steps for s in trains) and scenario.rounds > 1:
            raise fail(f"you train all {scenario.steps} steps in one call and then report: train report_every = "
                       f"{scenario.report_every} steps per round, so the pruner sees the accuracy at every rung.")
        if not trains:
            raise fail("your objective never calls trainer.train(model, optimizer, report_every).")
        if any(s != scenario.report_every for s in trains):
            raise fail(f"you train {trains} steps per round; each round trains report_every = "
                       f"{scenario.report_every} steps.")
        problem = _report_problem(reports, scenario, accuracies, trains)
        if problem:
            raise fail(problem)
        asked = kinds.count("should_prune")
        if asked == 0:
            raise fail("your objective reports but never asks trial.should_prune(): the pruner decides, but only "
                       "the objective can stop. After each report: if trial.should_prune(): raise "
                       "optuna.TrialPruned().")
        first_report, first_ask = kinds.index("report"), kinds.index("should_prune")
        if first_ask < first_report:
            raise fail("you ask trial.should_prune() before trial.report(...) of that round: the pruner then judges "
                       "the previous round's accuracy. Report first, then ask.")
        if scenario.prune_at is None:
            if outcome != "returned" or len(trains) != scenario.rounds:
                raise fail(f"trained {len(trains)} rounds of {scenario.rounds} and "
                           f"{'was pruned' if outcome == 'pruned' else 'returned'}: when should_prune() says False, "
                           f"train all {scenario.steps} steps.")
            last = accuracies[-1]
            if value is None:
                raise fail("your objective returned None: return the final validation accuracy (the study maximises "
                           "it).")
            if isinstance(value, (int, float)) and value in LOSSES:
                raise fail("your objective returns the training loss; return the final validation accuracy, "
                           f"{last} here (the study maximises it).")
            if isinstance(value, (int, float)) and not math.isclose(value, last) and math.isclose(value,
                                                                                             max(accuracies)):
                raise fail(f"you return the best accuracy of all rounds ({value}); return the final one ({last}): the "
                           f"study compares trials trained for the same number of steps.")
            if not isinstance(value, (int, float)) or not math.isclose(value, last):
                raise fail(f"your objective returned {value!r}; return the final validation accuracy, {last}.")
            continue
        rounds_after = trains[scenario.prune_at:]
        if outcome == "returned":
            raise fail(f"should_prune() said True after round {scenario.prune_at} and your objective returned "
                       f"{value!r}: a returned value makes the trial COMPLETE (and counts as a result). Raise "
                       f"optuna.TrialPruned() instead.")
        if rounds_after:
            raise fail(f"should_prune() said True after round {scenario.prune_at}, but you trained "
                       f"{len(rounds_after)} more round(s) before stopping: raise optuna.TrialPruned() right after "
                       f"should_prune() returns True — the steps after it are the budget pruning saves.")
    EX.passed(f"{len(SCENARIOS)} scenarios: accuracy reported at the steps done, pruned trials stop at once and "
              f"raise TrialPruned, complete ones return the final accuracy")
