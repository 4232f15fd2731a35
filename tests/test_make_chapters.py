"""The generator turns solution regions into stubs, refuses broken markers, and chapters/ is never stale."""
import jupytext
import pytest

from tools import make_chapters
from tools.make_chapters import MarkerError, strip_solutions

CELL = """```{{code-cell}} ipython3
:tags: [exercise-2.3, hide-input]

{body}
```
"""


def cell(body: str) -> str:
    return CELL.format(body=body)


def test_chapters_are_up_to_date():
    stale = make_chapters.stale_files()
    assert not stale, f"run `make chapters`: stale student notebooks {[str(p) for p in stale]}"


def test_region_becomes_a_stub_at_the_markers_indentation():
    text = cell("class Norm:\n    def forward(self, x):\n        ### BEGIN SOLUTION\n        return x * 2\n"
                "        ### END SOLUTION\n\n    def other(self):\n        return 1")
    out = strip_solutions(text)
    assert "return x * 2" not in out
    assert ('        raise NotImplementedError("Exercise 2.3: write the body of `Norm.forward`, then run the check '
            'cell below.")') in out
    assert "    def other(self):\n        return 1" in out  # code after the region is kept


def test_top_level_region_and_yaml_cell_options():
    text = "```{code-cell} ipython3\n---\ntags: [exercise-4.1]\n---\nx = 1\n### BEGIN SOLUTION\ny = 2\n" \
           "### END SOLUTION\n```\n"
    out = strip_solutions(text)
    assert 'raise NotImplementedError("Exercise 4.1: write your code here' in out and "y = 2" not in out


def test_every_stub_is_valid_python_that_raises_with_its_exercise():
    notebook = jupytext.reads(strip_solutions(
        cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION")), fmt="md:myst")
    namespace = {}
    exec(notebook.cells[0].source, namespace)
    with pytest.raises(NotImplementedError, match="Exercise 2.3: write the body of `f`"):
        namespace["f"](1)


@pytest.mark.parametrize("body, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed|has no '### END SOLUTION' before its cell ends"),
    ("x = 1\n### END SOLUTION", "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside the region opened at line 4"),
])
def test_unmatched_markers_name_file_and_line(body, message):
    with pytest.raises(MarkerError, match=message) as error:
        strip_solutions(cell(body), source="solutions/02_norm.md")
    assert str(error.value).startswith("solutions/02_norm.md:")


def test_region_without_exercise_tag_and_outside_cells_are_errors():
    with pytest.raises(MarkerError, match=r"^x.md:3: .*without an 'exercise-N.M' tag"):
        strip_solutions("```{code-cell} ipython3\ndef f():\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n```\n",
                        source="x.md")
    with pytest.raises(MarkerError, match="outside a code cell"):
        strip_solutions("Some prose\n### BEGIN SOLUTION\n", source="x.md")


def test_student_notebook_keeps_tags_and_names_its_chapter():
    files = make_chapters.all_student_files()
    ipynb = next(content for path, content in files.items() if path.name == "01_attention.ipynb")
    notebook = jupytext.reads(ipynb, fmt="ipynb")
    assert notebook.metadata["course"] == {"chapter": "01_attention"}
    tags = [tag for c in notebook.cells for tag in c.metadata.get("tags", [])]
    for exercise in ("1.1", "1.2", "1.3", "1.4", "1.5", "1.6"):
        assert f"exercise-{exercise}" in tags and f"check-{exercise}" in tags
    assert "### BEGIN SOLUTION" not in ipynb


def test_book_only_directive_is_dropped_from_student_notebooks():
    files = make_chapters.all_student_files()
    for path, content in files.items():
        assert "{student-notebook}" not in content, path
