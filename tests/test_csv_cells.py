"""CSV cells that a spreadsheet would run as formulas are neutralised; numbers stay numbers."""

import csv

import numpy as np
import pytest

from atomlens.descriptors.table import read_csv_frame, read_table
from atomlens.files import csv_cell, csv_text, write_csv

DANGEROUS = ['=HYPERLINK("http://x","y")', "@SUM(1)", "-cmd", "+1+2", "\tx", "\rx", "-1+cmd"]


@pytest.mark.parametrize("text", DANGEROUS)
def test_formula_cells_get_a_quote_and_come_back(text):
    assert csv_cell(text) == "'" + text
    assert csv_text(csv_cell(text)) == text


@pytest.mark.parametrize("value", [-1.5, -3, 0.0, np.float64(-2.5), None, "-1.5", "+2", "abc", ""])
def test_numbers_and_plain_text_are_kept(value):
    assert csv_cell(value) is value
    if isinstance(value, str):
        assert csv_text(value) == value


@pytest.mark.parametrize("text", ["'=x", "''-cmd", "'plain", "'-1"])
def test_text_already_starting_with_a_quote_round_trips(text):
    assert csv_text(csv_cell(text)) == text


def test_write_csv_neutralises_text_cells_only(tmp_path):
    path = write_csv(
        tmp_path / "t.csv",
        ["id", "=header", "value"],
        [["=HYPERLINK(1)", "@SUM(1)", -1.5], ["-cmd", "x", -2]],
    )
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["id", "'=header", "value"],
        ["'=HYPERLINK(1)", "'@SUM(1)", "-1.5"],
        ["'-cmd", "x", "-2"],
    ]
    frame = read_csv_frame(path)
    assert list(frame.columns) == ["id", "=header", "value"]
    assert frame["id"].tolist() == ["=HYPERLINK(1)", "-cmd"]
    assert frame["value"].tolist() == [-1.5, -2.0]  # still a numeric column


def test_table_ids_written_by_atomlens_read_back_unchanged(tmp_path):
    path = write_csv(
        tmp_path / "features.csv",
        ["id", "f1", "y"],
        [["-cmd", 1.0, -0.5], ["@SUM(1)", 2.0, 0.5], ["plain", 3.0, 1.5]],
    )
    table = read_table(path, "y")
    assert list(table.ids) == ["-cmd", "@SUM(1)", "plain"]
    np.testing.assert_allclose(table.y, [-0.5, 0.5, 1.5])
