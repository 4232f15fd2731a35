"""tools.timings: re-measuring some chapters keeps the other rows of the README table; bad arguments say so."""
from tools import timings


def test_previous_rows_are_kept_and_missing_cells_marked(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{timings.START}\n| chapter | book scale (s) | test scale (s) |\n|---|---|---|\n"
                      f"| 01_attention | 89 | 11 |\n| 02_normalization | 120 | 30 |\n\nMeasured …\n{timings.END}\n")
    rows = timings.previous_rows(readme, ["book", "test"])
    assert rows == {"01_attention": {"book": 89.0, "test": 11.0}, "02_normalization": {"book": 120.0, "test": 30.0}}
    rows["05_diffusion"] = {"test": 40.0}  # measured at one scale only
    text = timings.table(rows, ["book", "test"])
    assert "| 01_attention | 89 | 11 |" in text and "| 05_diffusion | – | 40 |" in text


def test_unknown_chapter_or_scale_is_an_error(capsys):
    assert timings.main(["99_nothing"]) == 2
    assert "no chapter 99_nothing" in capsys.readouterr().err
    assert timings.main(["--scales", "huge"]) == 2
    assert "unknown scale(s) huge" in capsys.readouterr().err
