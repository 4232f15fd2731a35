"""tools.timings: re-measuring some chapters keeps the other rows of the README table; bad arguments say so; the
reference workload runs and every chapter's time is also written as a multiple of it."""
import nbformat

from tools import reference_workload, timings


def test_previous_rows_are_kept_and_missing_cells_marked(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{timings.START}\n| chapter | book scale (s) | test scale (s) |\n|---|---|---|\n"
                      f"| 01_attention | 89 | 11 |\n| 02_normalization | 120 | 30 |\n\nMeasured …\n{timings.END}\n")
    rows = timings.previous_rows(readme, ["book", "test"])  # an old table, without the multiples
    assert rows == {"01_attention": {"book": 89.0, "test": 11.0}, "02_normalization": {"book": 120.0, "test": 30.0}}
    rows["05_diffusion"] = {"test": 40.0, "test×": 7.5}  # measured at one scale only
    text = timings.table(rows, ["book", "test"], reference=5.25)
    assert "| chapter | book scale (s) | book (× reference) | test scale (s) | test (× reference) |" in text
    assert "| 01_attention | 89 | – | 11 | – |" in text and "| 05_diffusion | – | – | 40 | 7.5 |" in text
    assert "took 5.25 s here" in text
    readme.write_text(f"{timings.START}\n{text}\n{timings.END}\n")
    assert timings.previous_rows(readme) == rows  # the new table reads back, multiples included


def test_reference_workload_is_fast_at_a_tiny_size():
    seconds = reference_workload.reference_workload(steps=1)
    assert 0 < seconds < 30


def test_write_measures_the_reference_and_keeps_other_rows(tmp_path, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{timings.START}\n| chapter | book scale (s) | book (× reference) | test scale (s) | "
                      f"test (× reference) |\n|---|---|---|---|---|\n| 01_attention | 89 | 17.0 | 11 | 2.1 |\n"
                      f"| 02_normalization | 120 | 22.9 | 30 | 5.7 |\n{timings.END}\nafter\n")
    references = iter([4.0, 5.0])  # before and after the chapters: the faster one counts
    monkeypatch.setattr(timings, "reference_workload", lambda steps: next(references))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()")])
    notebook.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-11-22T10:00:00.000000Z",
                                               "shell.execute_reply": "2026-11-22T10:00:12.500000Z"}
    monkeypatch.setattr(timings, "run_notebook", lambda path, scale: (20.0, notebook))
    assert timings.main(["02_normalization", "--scales", "test", "--write", str(readme), "--cells", "3"]) == 0
    out = capsys.readouterr().out
    assert "12.5 s   3.12 ×  cell   0: train()" in out  # the slowest cells, in seconds and × reference
    text = readme.read_text()
    assert "| 01_attention | 89 | 17.0 | 11 | 2.1 |" in text  # another chapter: kept as it was
    assert "| 02_normalization | 120 | 22.9 | 20 | 5.0 |" in text  # book kept, test re-measured: 20 s / 4 s
    assert "took 4.00 s here" in text and text.startswith("intro\n") and text.endswith("after\n")


def test_unknown_chapter_or_scale_is_an_error(capsys, tmp_path):
    assert timings.main(["99_nothing"]) == 2
    assert "no chapter 99_nothing" in capsys.readouterr().err
    assert timings.main(["--scales", "huge"]) == 2
    assert "unknown scale(s) huge" in capsys.readouterr().err
    (tmp_path / "README.md").write_text("no markers\n")
    assert timings.main(["--write", str(tmp_path / "README.md")]) == 2
    assert "has no" in capsys.readouterr().err
