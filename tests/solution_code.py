"""Run a solution notebook's teaching code (setup cell, exercise cells, chosen definitions) outside Jupyter, so
hypothesis can test it against PyTorch on many shapes."""

import linecache

import jupytext

from utils import conventions

SOLUTIONS = conventions.ROOT / "solutions"


def solution_namespace(chapter: str, definitions: tuple[str, ...] = ()) -> dict:
    """The names defined by ``solutions/<chapter>.md``'s setup cell, its ``exercise-N.M`` cells, and the first
    block (up to a double blank line) of each other code cell that starts with one of ``definitions``."""
    path = SOLUTIONS / f"{chapter}.md"
    notebook = jupytext.read(path)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    wanted = [code[0]]
    wanted += [source.split("\n\n\n")[0] for source in code if definitions and source.startswith(definitions)]
    wanted += [c.source for c in notebook.cells if conventions.cell_exercise(c, conventions.EXERCISE)]
    namespace = {}
    for number, source in enumerate(wanted):
        # Each cell gets a file name of its own in linecache, as IPython gives a notebook's cells: a traceback
        # then quotes the cell's own line, not the line with that number in the .md file.
        filename = f"<{path.name}, cell {number}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own notebook
    return namespace
