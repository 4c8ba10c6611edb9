import json

import pytest

from helpers import cli, hwnas, toy_rows, write_csv


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_device(nb201_path, tmp_path):
    out = tmp_path / "out"
    r = cli("bench", "nb201", "--data", nb201_path, "--device", "pixel9", "--out", out)
    assert_user_error(r, "unknown device 'pixel9'")
    assert not out.exists()


def test_missing_file(tmp_path):
    r = cli("bench", "nb201", "--data", tmp_path / "nope.csv.gz", "--out", tmp_path / "o")
    assert_user_error(r, "nope.csv.gz", "no such file")


@pytest.mark.parametrize("spec", ["acc", "acc:best", "acc:max<=3", ":min"])
def test_malformed_objective(spec, tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    r = cli("bench", "table", path, "--choices", "width,depth", "--objectives", spec)
    assert_user_error(r, spec)


def test_unknown_searcher_and_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    r = cli(
        "bench",
        "table",
        path,
        "--choices",
        "width",
        "--objectives",
        "acc:max",
        "--searchers",
        "random,magic",
    )
    assert_user_error(r, "unknown searcher 'magic'")
    r = cli("bench", "table", path, "--choices", "size", "--objectives", "acc:max")
    assert_user_error(r, "no column 'size'")


def test_bad_option_value_is_one_line_exit_2(tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    r = cli(
        "bench", "table", path, "--choices", "width", "--objectives", "acc:max", "--budget", "zero"
    )
    assert_user_error(r, "--budget")


def test_table_bench_end_to_end(tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    out = tmp_path / "out"
    r = hwnas(
        "bench",
        "table",
        path,
        "--choices",
        "width,depth,op,kernel",
        "--objectives",
        "acc:max,lat:min",
        "--searchers",
        "random,nsga2",
        "--seeds",
        "2",
        "--budget",
        "30",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["searchers"]) == {"random", "nsga2"}
    assert summary["true_front"]["size"] >= 2
