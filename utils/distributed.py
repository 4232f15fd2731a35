"""Launching a few `torch.distributed` processes on one machine, the way practitioners do, without ever hanging.

    from utils import distributed
    results = distributed.launch(worker, world_size=2, args=(config,), timeout=60)   # one result per rank

``launch`` starts ``world_size`` processes (the ``forkserver`` start method of ``torch.multiprocessing``: torch is
imported once, in the server, so every later launch starts in a fraction of a second), joins them to a gloo process
group on a free local port, calls ``worker(*args)`` in each and returns what each returned, read back from files.

- A worker must be importable by the new processes. A function defined in a notebook is not, so ``launch`` writes
  its source (and that of the notebook functions and classes it uses) into a module in :data:`WORK` first
  (:func:`export`) — what ``%%writefile`` does by hand.
- Nothing can hang: the process group's collectives time out, and the parent kills every rank after ``timeout``
  seconds and raises :class:`LaunchTimeout`, naming the ranks that had not finished.
- An exception in a worker comes back as :class:`RankError` with that rank's traceback (the lines of *your* code
  in it), not as a silent dead process.

On a GPU cluster the same worker runs under ``torchrun --nproc_per_node=8`` with the NCCL backend: only the
launcher changes (see Chapter 10's "Going further").
"""
from __future__ import annotations

import ast
import contextlib
import datetime
import hashlib
import importlib.util
import inspect
import linecache
import os
import pickle
import shutil
import socket
import sys
import tempfile
import textwrap
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

WORK = Path(tempfile.gettempdir()) / "course_distributed"  # exported workers and per-rank results live here
HEADER = ("import math\nimport time\n\nimport torch\nimport torch.distributed as dist\nimport torch.nn as nn\n"
          "import torch.nn.functional as F\n")


class RankError(RuntimeError):
    """A worker raised on one or more ranks; ``.failures`` maps rank -> :class:`Failure`."""

    def __init__(self, message: str, failures: dict[int, Failure]):
        super().__init__(message)
        self.failures = failures


class LaunchTimeout(RuntimeError):
    """Some ranks had not finished after the launch's timeout (a collective that not every rank joined)."""

    def __init__(self, message: str, unfinished: list[int]):
        super().__init__(message)
        self.unfinished = unfinished


@dataclass
class Failure:
    """What one rank's exception looked like, sent back to the parent as plain data."""

    type: str  # "RuntimeError"
    message: str
    traceback: str  # formatted, as the rank saw it
    frames: list[tuple[str, int, str, str]]  # (file, line number, source line, function) of every frame
    not_implemented: bool = False  # a stub's NotImplementedError

    def learner_frame(self) -> tuple[str, int, str, str] | None:
        """The innermost frame in an exported module or a notebook cell (the learner's code), if any."""
        mine = [f for f in self.frames if str(WORK) in f[0] or f[0].startswith("<")]
        return mine[-1] if mine else None


# ---------------------------------------------------------------------------------------------- ports, folders
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the rendezvous of one process group)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------------------------- exporting
def _source(obj) -> str:
    """The source of a function or class, also when it was defined in a notebook cell (IPython keeps cells in
    linecache; ``inspect.getsource`` fails for classes there, so a class is found through one of its methods)."""
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        if not isinstance(obj, type):
            raise
    for member in vars(obj).values():
        function = getattr(member, "__func__", member)
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        text = "".join(linecache.getlines(code.co_filename))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.name == obj.__name__:
                return textwrap.dedent(ast.get_source_segment(text, node, padded=True) or "")
    raise OSError(f"could not find the source of class {obj.__name__}: define it in a cell or a module")


def _names_used(obj) -> set[str]:
    """Global names a function (or every method of a class) reads, nested code objects included."""
    codes = []
    if isinstance(obj, type):
        for member in vars(obj).values():
            function = getattr(member, "__func__", member)
            if hasattr(function, "__code__"):
                codes.append(function.__code__)
        codes += [None]  # the class body itself: its bases and decorators
    else:
        codes.append(obj.__code__)
    names: set[str] = set()
    while codes:
        code = codes.pop()
        if code is None:
            continue
        names |= set(code.co_names)
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    if isinstance(obj, type):
        names |= {base.__name__ for base in obj.__bases__}
    return names


def _importable(obj) -> bool:
    module = getattr(obj, "__module__", None)
    if not module or module == "__main__" or module not in sys.modules:
        return False
    file = getattr(sys.modules[module], "__file__", None)
    return bool(file) and str(WORK) not in file


def export(*objects, name: str | None = None) -> Path:
    """Write ``objects`` (functions or classes, from a notebook or anywhere) and the notebook-level names they use
    into one importable module under :data:`WORK`; return its path. The module starts with :data:`HEADER`
    (torch, dist, nn, F, math, time), then the imports, constants and definitions the objects need."""
    lines, defined, seen = [], set(), set()

    def add(obj, label):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        scope = getattr(obj, "__globals__", None) or vars(sys.modules.get(obj.__module__, types.ModuleType("_")))
        for used in sorted(_names_used(obj)):
            if used in defined or used not in scope or used in HEADER.split():
                continue
            value = scope[used]
            if isinstance(value, types.ModuleType):
                lines.append(f"import {value.__name__} as {used}" if value.__name__ != used else
                             f"import {used}")
            elif (inspect.isfunction(value) or isinstance(value, type)) and _importable(value):
                lines.append(f"from {value.__module__} import {value.__qualname__} as {used}")
            elif inspect.isfunction(value) or isinstance(value, type):
                add(value, used)
                continue
            elif isinstance(value, (bool, int, float, str, type(None))) or (
                    isinstance(value, tuple) and all(isinstance(v, (bool, int, float, str)) for v in value)):
                lines.append(f"{used} = {value!r}")
            else:
                continue  # not reproducible as source: the worker gets it as an argument, or fails by name
            defined.add(used)
        lines.append("\n\n" + _source(obj))
        defined.add(label)

    for obj in objects:
        add(obj, obj.__name__)
    text = HEADER + "\n".join(lines) + "\n"
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{name or objects[0].__name__}_{digest}.py"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return path


def reference(fn: Callable) -> tuple[str, str, str]:
    """How a new process finds ``fn``: ("module", module name, qualname) or ("file", path, name)."""
    if _importable(fn):
        return "module", fn.__module__, fn.__qualname__
    return "file", str(export(fn)), fn.__name__


def resolve(reference: tuple[str, str, str]) -> Callable:
    kind, where, name = reference
    if kind == "module":
        obj = importlib.import_module(where)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    module_name = Path(where).stem
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, where)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return getattr(module, name)


# ---------------------------------------------------------------------------------------------- launching
def _worker(rank: int, world_size: int, port: int, reference, args, kwargs, folder: str, threads: int,
            collective_timeout: float) -> None:
    """Runs in each new process: join the group, call the worker, write its result (or its failure) to a file."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    outcome: dict = {}
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=collective_timeout))
        try:
            outcome["result"] = resolve(reference)(*args, **kwargs)
        finally:
            dist.destroy_process_group()
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent as data
        frames = [(f.filename, f.lineno, (f.line or "").strip(), f.name)
                  for f in traceback.extract_tb(error.__traceback__)]
        outcome["failure"] = Failure(type(error).__name__, str(error),
                                     "".join(traceback.format_exception(error)), frames,
                                     isinstance(error, NotImplementedError))
    path = Path(folder) / f"rank{rank}.pt"
    try:
        torch.save(outcome, path)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        torch.save({"failure": Failure(type(error).__name__, f"the worker's result could not be sent back: {error}",
                                       "", [])}, path)


_CONTEXT = None
PRELOAD = ["torch", "torch.distributed", "torch.nn", "torch.nn.parallel", "torch._dynamo",  # DDP imports dynamo
           "torch.distributed.device_mesh", "torch.distributed.fsdp", "torch.distributed.pipelining",
           "torch.distributed.optim", "torch.distributed._tools.mem_tracker", "utils.distributed",
           "utils.checks.distributed.workers"]  # imported once, in the fork server: every rank starts with them


def _context():
    """The forkserver context, with torch preloaded in the server (started once, on the first launch)."""
    global _CONTEXT
    if _CONTEXT is None:
        import torch.multiprocessing as mp

        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
    return _CONTEXT


def launch(worker: Callable, world_size: int = 2, *, args: tuple = (), kwargs: dict | None = None,
           timeout: float = 60.0, threads: int = 1, collective_timeout: float | None = None) -> list:
    """Run ``worker(*args, **kwargs)`` on ``world_size`` new processes in one gloo process group; return the list
    of their return values, by rank. Raises :class:`RankError` if a rank raised (a stub's NotImplementedError is
    re-raised as it is), :class:`LaunchTimeout` if some rank had not finished after ``timeout`` seconds.

    Arguments and results travel by pickling: tensors, numbers, dicts, lists; not classes defined in a notebook.
    """
    import torch

    found = reference(worker)
    folder = Path(tempfile.mkdtemp(prefix="launch_", dir=_work()))
    port = free_port()
    collective_timeout = collective_timeout or max(5.0, timeout - 2)
    context = _context()
    processes = [context.Process(target=_worker, daemon=True,
                                 args=(rank, world_size, port, found, args, kwargs or {}, str(folder), threads,
                                       collective_timeout)) for rank in range(world_size)]
    try:
        with _main_hidden():
            for process in processes:
                process.start()
        deadline = time.monotonic() + timeout
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        unfinished = [rank for rank, process in enumerate(processes) if process.is_alive()]
        for rank in unfinished:
            processes[rank].kill()
            processes[rank].join(5)
        outcomes = {}
        for rank, process in enumerate(processes):
            path = folder / f"rank{rank}.pt"
            if path.exists():
                outcomes[rank] = torch.load(path, weights_only=False)
        failures = {rank: o["failure"] for rank, o in outcomes.items() if "failure" in o}
        if failures:
            raise _rank_error(worker, failures, unfinished)
        if unfinished:
            raise LaunchTimeout(
                f"rank{'s' if len(unfinished) > 1 else ''} {', '.join(map(str, unfinished))} of {world_size} had not "
                f"finished after {timeout:g} s and {'were' if len(unfinished) > 1 else 'was'} stopped: a collective "
                f"(all_reduce, send/recv, barrier) that not every rank joined waits forever — a rank that skips "
                f"a call the others make, or a send without its matching recv.", unfinished)
        dead = [rank for rank in range(world_size) if rank not in outcomes]
        if dead:
            raise RankError(f"rank{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))} died without a result "
                            f"(exit code {processes[dead[0]].exitcode}): out of memory, or a crash in native code.",
                            {})
        return [outcomes[rank].get("result") for rank in range(world_size)]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _main_hidden():
    """Start processes without telling them the parent's main module: multiprocessing would re-import it in every
    child (pytest's, ipykernel's or a script's imports: seconds per rank). Workers never live in ``__main__``."""
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    try:
        for name in saved:
            setattr(main, name, None) if name == "__spec__" else delattr(main, name)
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _work() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    return WORK


def _rank_error(worker: Callable, failures: dict[int, Failure], unfinished: list[int]) -> BaseException:
    """The exception the parent raises for ranks that raised: the first rank's own, said as theirs."""
    consequences = ("Connection reset", "Connection closed", "Timed out", "timed out")
    causes = {r: f for r, f in failures.items() if not any(c in f.message for c in consequences)}
    rank, failure = min((causes or failures).items())  # the rank that failed first, not those left waiting
    if failure.not_implemented:
        return NotImplementedError(failure.message)
    frame = failure.learner_frame()
    where = f" In your `{frame[3]}`, at the line `{frame[2]}`." if frame and frame[2] else ""
    others = sorted(set(failures) - {rank})
    also = f" Rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} failed too." if others else ""
    stopped = f" Ranks {', '.join(map(str, unfinished))} were stopped." if unfinished else ""
    text = failure.message
    if "Connection closed by peer" in text or "Timed out" in text or "timed out" in text:
        stopped += (" A rank waited in a collective that another rank never joined (it skipped the call, called a "
                    "different one, or finished early): every rank must make the same collective calls, in the "
                    "same order; every send needs its recv.")
    message = (f"rank {rank} raised {failure.type}: {' '.join(failure.message.split())[:600]}.{where}{also}"
               f"{stopped}\n\nThe traceback on rank {rank}:\n{failure.traceback}")
    return RankError(message, failures)


# ---------------------------------------------------------------------------------------------- memory
def tracked_peak(step: Callable[[], object], *modules_and_optimizers) -> dict[str, int]:
    """Run ``step()`` once under PyTorch's memory tracker (``torch.distributed._tools.mem_tracker.MemTracker``,
    which also follows FSDP's storage resizing) and return this process's peak bytes, by category (Parameter,
    Gradient, Optstate, Activation, Temp, …) and ``"Total"``. CPU tensors only."""
    import torch

    tracker = _peak_tracker()
    tracker.track_external(*modules_and_optimizers)
    with tracker:
        step()
    return dict(tracker.get_tracker_snapshot("peak")[torch.device("cpu")])


def _peak_tracker():
    """MemTracker without its per-module statistics, which refuse a module called twice in one step (GPipe runs
    each stage once per micro-batch); the process-wide peak, by category, is all we read."""
    from torch.distributed._tools.mem_tracker import MemTracker

    class NoModules:  # stands in for MemTracker's module tracker: no hooks on modules or their inputs at all
        parents: set = set()
        is_bw = False

        def register_user_hooks(self, *hooks):
            pass

        def clear_user_hooks(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            pass

    class PeakTracker(MemTracker):
        def __init__(self):
            super().__init__()
            self._mod_tracker = NoModules()  # its backward hooks on a stage's leaf inputs break ScheduleGPipe

        def _pre_fw_hook(self, module, inputs):
            pass

        def _post_fw_hook(self, module, inputs, outputs):
            pass

        def _pre_bw_hook(self, module, args):
            pass

        def _post_bw_hook(self, module, args):
            pass

    return PeakTracker()
