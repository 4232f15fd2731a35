"""Schedules a learner's code can read besides its ``schedule`` argument — the notebook's globals
(``schedules['linear']``, a global ``alpha_bars``), the chapter's builders at another T, the other builder — and
the readings that name the one a recovered quantity, or a whole output, came from.

A wrong ᾱ_t whose values are another schedule's at every image is not a formula mistake: the equation is right and
the table is not the argument's. Naming where the table came from tells the learner which line to change.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from utils.checks.diffusion.references import reference_cosine_schedule, reference_linear_schedule
from utils.checks.diffusion.schedule import Schedule, close

# The number of steps a notebook (or a paper) uses: a schedule built inside the learner's function with one of
# these, or a global built with it, is read back. Evaluating a model per candidate is cheap; thousands are not.
USUAL_T = (10, 20, 25, 50, 100, 200, 250, 300, 400, 500, 1000, 2000, 4000)
_TABLES = {"ᾱ": "alpha_bars", "α": "alphas", "β": "betas"}
_BUILDERS = {"linear": reference_linear_schedule, "cosine": reference_cosine_schedule}


@dataclass(frozen=True)
class Source:
    """A table (or a schedule of tables) the learner's code can reach, with how the code reaches it."""

    code: str  # "schedules['linear']", "alpha_bars", "linear_schedule(200)"
    words: str  # "a global of your notebook (the linear schedule, T = 200)"
    tables: dict  # symbol → (T',) float64 with step k at index k − 1; "?" for a bare tensor of unknown symbol
    shift: int = 0  # 1: a bare table indexed by t itself (a padded one, whose index 0 is step 0)

    def table(self, symbol: str) -> torch.Tensor | None:
        return self.tables.get(symbol, self.tables.get("?"))

    def read(self, symbol: str, steps: torch.Tensor) -> torch.Tensor | None:
        """(B,) the values at ``steps``, or None when a step is past the table (the code would have raised)."""
        table = self.table(symbol)
        if table is None:
            return None
        index = steps - 1 + self.shift
        if symbol == "ᾱ" and self.shift == 0:  # ᾱ_0 = 1 is read from a padded table: 1 where the step is 0
            inside = (index >= 0) & (index < len(table))
            if not bool(((steps == 0) | inside).all()):
                return None
            return torch.where(steps == 0, torch.ones_like(table[:1]), table[index.clamp(min=0, max=len(table) - 1)])
        if bool((index < 0).any() or (index >= len(table)).any()):
            return None
        return table[index]

    @property
    def schedule(self) -> Schedule | None:
        if not all(symbol in self.tables for symbol in _TABLES) or self.shift:
            return None
        return Schedule(self.tables["β"], self.tables["α"], self.tables["ᾱ"])


@functools.lru_cache(maxsize=64)
def _built(builder: str, T: int) -> Schedule:
    return Schedule.from_betas(_BUILDERS[builder](T))


def describe_schedule(schedule: Schedule) -> str:
    """"the cosine schedule, T = 50" when a chapter builder gives it; "a schedule with T = 50" otherwise."""
    betas = schedule.betas.detach().double()
    for builder in _BUILDERS:
        if close(betas, _built(builder, len(betas)).betas, rtol=2e-4, atol=1e-7):
            return f"the {builder} schedule, T = {len(betas)}"
    return f"a schedule with T = {len(betas)}"


class LearnerSources:
    """:func:`learner_sources` of ``fn``, read on first use: a passing check never looks at the notebook's globals."""

    def __init__(self, fn):
        self.fn = fn
        self._found: list[Source] | None = None

    def __iter__(self):
        if self._found is None:
            self._found = learner_sources(self.fn)
        return iter(self._found)


def learner_sources(fn) -> list[Source]:
    """The schedules and 1-D float tensors among ``fn``'s globals (the notebook's, for a cell's function) and its
    closure: a Schedule, a dict or list of Schedules, a bare table such as a global ``alpha_bars``."""
    found: list[Source] = []
    names = dict(getattr(fn, "__globals__", {}) or {})
    closure = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(getattr(getattr(fn, "__code__", None), "co_freevars", ()), closure):
        try:
            names[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    for name, value in names.items():
        if name.startswith("_"):
            continue
        if isinstance(value, dict):
            items = [(f"{name}[{key!r}]", item) for key, item in list(value.items())[:8]]
        elif isinstance(value, (list, tuple)) and len(value) <= 8:
            items = [(f"{name}[{i}]", item) for i, item in enumerate(value)]
        else:
            items = [(name, value)]
        for code, item in items:
            found.extend(_as_sources(code, item))
    return found


def _attribute(value, name: str):
    """``value.name``, or None when reading it fails (a notebook object whose property raises)."""
    try:
        return getattr(value, name, None)
    except Exception:  # noqa: BLE001 - any object of the learner's notebook: reading it must not break the check
        return None


def _as_sources(code: str, value) -> list[Source]:
    tables = {symbol: _attribute(value, attribute) for symbol, attribute in _TABLES.items()}
    if all(isinstance(t, torch.Tensor) and t.dim() == 1 and t.is_floating_point() and len(t) >= 1
           for t in tables.values()) and len({len(t) for t in tables.values()}) == 1:
        schedule = Schedule(*(tables[s].detach().double().cpu() for s in ("β", "α", "ᾱ")))
        return [Source(code, f"a schedule of your notebook ({describe_schedule(schedule)})",
                       {s: t.detach().double().cpu() for s, t in tables.items()})]
    if isinstance(value, torch.Tensor) and value.dim() == 1 and value.is_floating_point() and 2 <= len(value) <= 10_000:
        table = value.detach().double().cpu()
        built = _built_table(table)
        if built is not None:  # a table of one of the chapter's schedules: read as that whole schedule
            schedule, words = built
            return [Source(code, f"a tensor of your notebook, {words}",
                           {"ᾱ": schedule.alpha_bars, "α": schedule.alphas, "β": schedule.betas})]
        return [Source(f"{code}[t - 1]", f"a tensor of your notebook with {len(table)} entries", {"?": table}),
                Source(f"{code}[t]", f"a tensor of your notebook with {len(table)} entries", {"?": table}, shift=1)]
    return []


def _built_table(table: torch.Tensor) -> tuple[Schedule, str] | None:
    """(the schedule, "the alpha_bars of the linear schedule, T = 1000") when ``table`` is one of a builder's tables
    (or ᾱ padded with ᾱ_0 = 1 in front)."""
    for builder in _BUILDERS:
        for steps, start in ((len(table), 0), (len(table) - 1, 1)):
            if steps < 2 or steps > 10_000:
                continue
            schedule = _built(builder, steps)
            for symbol, attribute in _TABLES.items():
                if (start == 0 or symbol == "ᾱ") and close(table[start:], getattr(schedule, attribute), rtol=2e-4,
                                                           atol=1e-7):
                    padded = " with ᾱ_0 = 1 in front" if start else ""
                    return schedule, f"the {attribute}{padded} of the {builder} schedule, T = {steps}"
    return None


def builder_sources(argument: Schedule) -> list[Source]:
    """The chapter's two builders at the usual T (and the argument's own T), each as a schedule."""
    T = len(argument.betas)
    found = []
    for builder in _BUILDERS:
        for steps in dict.fromkeys((T, *USUAL_T)):
            schedule = _built(builder, steps)
            found.append(Source(f"{builder}_schedule({steps})", f"the {builder} schedule with T = {steps}",
                                {"ᾱ": schedule.alpha_bars, "α": schedule.alphas, "β": schedule.betas}))
    return found


def sources_of(context) -> list[Source]:
    """Where a table can come from, the learner's own reachable ones first (the surest name), then the builders;
    none that equals the argument (reading it is right)."""
    argument = context.schedule
    found = []
    for source in [*context.sources, *builder_sources(argument)]:
        schedule = source.schedule
        if schedule is not None and len(schedule.betas) == argument.T and \
                close(schedule.betas, argument.betas.double(), rtol=1e-6, atol=1e-10):
            continue
        found.append(source)
    return found


def source_of_values(values: torch.Tensor, symbol: str, steps: torch.Tensor, context) -> Source | None:
    """The source whose ``symbol`` table gives ``values`` ((B,), the learner's recovered quantity) at ``steps``, at
    every image; None when none does, or when the argument itself gives them."""
    own = context.quantity_at(symbol, steps)
    if own is not None and close(values, own, rtol=2e-4, atol=1e-7):
        return None
    for source in sources_of(context):
        read = source.read(symbol, steps)
        if read is not None and close(values, read, rtol=2e-4, atol=1e-7):
            return source
    return None


def argument_text(context) -> str:
    return f"the `schedule` argument ({describe_schedule(context.schedule)})"


def other_schedule(model, context, got: dict[str, torch.Tensor]) -> str | None:
    """The whole output is the equation computed on another schedule than the argument: every quantity was read
    from a global of the notebook, or from a schedule the code built itself."""
    groups = {None: tuple(model.parts), **model.groups}  # the whole equation first, then each group of it
    for source in sources_of(context):
        schedule = source.schedule
        if schedule is None or any(int(steps.max()) > schedule.T for steps in context.steps.values()):
            continue
        other = type(context)(schedule, context.steps)
        for group, members in groups.items():
            predicted = model.combine({name: formula.value(other if name in members else context)
                                       for name, formula in model.parts.items()})
            if not all(close(got[k], predicted[k], rtol=2e-4, atol=1e-7) for k in got):
                continue
            what = (f"your code is {model.equation} exactly, but on another schedule: every quantity" if group is None
                    else f"everything in {model.equation} is right except {group}, which your code computes on another "
                         f"schedule: its quantities")
            return (f"{what} come{'s' if group is None else ''} from {source.code}, {source.words}, not from "
                    f"{argument_text(context)}. Read ᾱ_t, α_t and β_t from the `schedule` passed in "
                    f"(schedule.alpha_bars[t - 1], …, and pass that same schedule on to any function you call): the "
                    f"sampler calls your code with any schedule and any T.")
    return None


def recovered_from_elsewhere(text: str, symbol: str, values: torch.Tensor, steps: torch.Tensor, context,
                             image: int) -> str | None:
    """"your ᾱ_t is schedules['linear']'s …" for a recovered quantity (``values`` (B,) at ``steps``) that another
    schedule gives at every image; None otherwise."""
    source = source_of_values(values, symbol, steps, context)
    if source is None:
        return None
    own = context.quantity_at(symbol, steps)
    code = source.code if source.schedule is None else f"{source.code}.{_TABLES[symbol]}"
    right = f", where the argument's {symbol}_{int(steps[image])} = {own[image].item():.4g}" if own is not None else ""
    return (f"your {text} comes from another schedule: it is {code}, {source.words}, at every image (at step "
            f"{int(steps[image])}: {values[image].item():.4g}{right}). Read it from {argument_text(context)}, "
            f"schedule.{_TABLES[symbol]}: the sampler calls your code with any schedule and any T.")
