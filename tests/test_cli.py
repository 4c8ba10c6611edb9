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


def test_nb201_objective_that_is_no_metric(nb201_path, tmp_path):
    out = tmp_path / "out"
    r = cli("bench", "nb201", "--data", nb201_path, "--objective", "flops:min", "--out", out)
    assert_user_error(r, "'flops'", "params")
    assert not out.exists()


def test_chain_bench_in_three_objectives_is_refused_and_runs_in_two(tmp_path):
    out = tmp_path / "out"
    r = cli("bench", "chain", "--layers", "1", "--out", out)
    assert_user_error(r, "--layers")
    r = cli("bench", "chain", "--layers", "6", "--widths", "3", "--searchers", "random,linas",
            "--seeds", "1", "--budget", "20", "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["benchmark"] == "chain-6x3-seed0"
    assert 0 < summary["searchers"]["linas"]["hv_ratio@20"] <= 1


def test_missing_file(tmp_path):
    r = cli("bench", "nb201", "--data", tmp_path / "nope.csv.gz", "--out", tmp_path / "o")
    assert_user_error(r, "nope.csv.gz", "no such file")


@pytest.mark.parametrize("spec", ["acc", "acc:best", "acc:max<=3", ":min"])
def test_malformed_objective(spec, tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    r = cli("bench", "table", path, "--choices", "width,depth", "--objective", spec)
    assert_user_error(r, spec)


def test_unknown_searcher_and_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    r = cli(
        "bench",
        "table",
        path,
        "--choices",
        "width",
        "--objective",
        "acc:max",
        "--searchers",
        "random,magic",
    )
    assert_user_error(r, "unknown searcher 'magic'")
    r = cli("bench", "table", path, "--choices", "size", "--objective", "acc:max")
    assert_user_error(r, "no column 'size'")


def test_bad_option_value_is_one_line_exit_2(tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    r = cli(
        "bench", "table", path, "--choices", "width", "--objective", "acc:max", "--budget", "zero"
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
        "--objective",
        "acc:max",
        "--objective",
        "lat:min",
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


def test_version_help_and_python_dash_m():
    import subprocess
    import sys

    from hwnas import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"hwnas {__version__}"
    r = cli("-h")
    assert r.returncode == 0 and "Examples:" in r.stdout and "profile" in r.stdout
    r = cli("run", "-h")
    assert r.returncode == 0 and all(o in r.stdout for o in ("--searcher", "--budget", "--seed"))
    r = subprocess.run([sys.executable, "-m", "hwnas", "--version"], capture_output=True,
                       text=True, check=False)  # fmt: skip
    assert r.returncode == 0 and __version__ in r.stdout


def test_config_show_prints_every_setting_and_reads_back(tmp_path):
    import yaml

    from hwnas.config import RunConfig, load_config

    r = cli("config", "show")
    assert r.returncode == 0
    shown = yaml.safe_load(r.stdout)
    assert shown == RunConfig().model_dump(mode="json")
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ntrain: {epochs: 2}\n")
    merged = yaml.safe_load(cli("config", "show", "--config", path).stdout)
    assert merged["seed"] == 3 and merged["train"]["epochs"] == 2
    assert merged["search"] == shown["search"]
    (tmp_path / "round.yaml").write_text(r.stdout)
    assert load_config(tmp_path / "round.yaml") == RunConfig()


def test_metrics_lists_names_with_units():
    r = cli("metrics", "--data", "python")
    assert r.returncode == 0
    assert "bits_per_byte" in r.stdout and "bits/byte" in r.stdout and "latency_ms" in r.stdout
    assert "accuracy " not in r.stdout.replace("next_token_accuracy", "")


def test_run_options_override_the_config_and_are_validated(tmp_path):
    out = tmp_path / "o"
    r = cli("run", "--searcher", "magic", "--out", out)
    assert_user_error(r, "search.searcher", "magic")
    r = cli("run", "--seed", "-1", "--out", out)
    assert_user_error(r, "seed")
    r = cli("run", "--budget", "0", "--out", out)
    assert_user_error(r, "search.budget")
    r = cli("run", "--objective", "nope:max", "--out", out)
    assert_user_error(r, "nope", "latency_ms")  # the error lists the metric names
    assert not out.exists()
