"""Each student notebook fails exactly at its stubs: every check cell first raises the NotImplementedError of its
own exercise, and once that exercise is solved (the solution's cell is run in its place) the check passes and the
notebook carries on. Nothing else may fail before the last check cell.
"""

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from utils import conventions
from utils.conventions import cell_exercise as exercise_tag

ROOT = conventions.ROOT
CHAPTERS = conventions.chapters()


def error_of(cell):
    return next((o for o in cell.outputs if o.output_type == "error"), None)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_notebook_fails_only_at_its_stubs(chapter, monkeypatch):
    monkeypatch.setenv("COURSE_SCALE", "test")
    student = nbformat.read(ROOT / "chapters" / f"{chapter}.ipynb", as_version=4)
    solution = jupytext.read(ROOT / "solutions" / f"{chapter}.md")
    solved = {exercise_tag(c, "exercise"): c.source for c in solution.cells if exercise_tag(c, "exercise")}
    last_check = max(i for i, c in enumerate(student.cells) if exercise_tag(c, "check"))
    cells = [c for c in student.cells[: last_check + 1] if c.cell_type == "code"]
    client = NotebookClient(nbformat.v4.new_notebook(), kernel_name="python3", timeout=120, allow_errors=True,
                            resources={"metadata": {"path": str(ROOT / "chapters")}})
    seen_stubs = []
    with client.setup_kernel():
        def run(source):
            cell = nbformat.v4.new_code_cell(source)
            client.nb.cells.append(cell)
            client.execute_cell(cell, len(client.nb.cells) - 1)
            return error_of(cell)

        for index, cell in enumerate(cells):
            exercise = exercise_tag(cell, "check")
            error = run(cell.source)
            if exercise is None:
                assert error is None or (error.ename == conventions.STUB_ERROR and exercise_tag(cell, "exercise")), \
                    f"cell {index} of the student notebook failed before its stub: {error.ename}: {error.evalue}"
                continue
            assert error is not None and error.ename == conventions.STUB_ERROR, \
                f"the check of Exercise {exercise} should raise the stub's NotImplementedError, got {error}"
            assert f"Exercise {exercise}" in error.evalue, error.evalue
            seen_stubs.append(exercise)
            assert run(solved[exercise]) is None, f"the solution of Exercise {exercise} failed"
            error = run(cell.source)
            assert error is None, f"check {exercise} failed on the solution: {error.ename}: {error.evalue}"
    assert seen_stubs == sorted(solved, key=conventions.exercise_key), seen_stubs
