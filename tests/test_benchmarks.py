import csv
import gzip
import json

import numpy as np
import pytest

from helpers import OBJECTIVES, toy_bench, toy_rows, write_csv
from hwnas.benchmarks.compare import Scorer, run_comparison
from hwnas.benchmarks.nb201 import load_nb201
from hwnas.benchmarks.table import TableBenchmark
from hwnas.benchmarks.zero_cost import naslib_cell
from hwnas.errors import HwnasError
from hwnas.evaluate import InvalidArch
from hwnas.families.nb201.cell import effective_edges, parse_cell
from hwnas.pareto import Objective


def test_nb201_cells_match_the_table(nb201_path):
    bench = load_nb201(nb201_path, "cifar100", "raspi4")
    assert bench.space.size() == 15625 == len(bench.entries()[0])
    with gzip.open(nb201_path, "rt") as handle:
        rows = [row for _, row in zip(range(300), csv.DictReader(handle), strict=False)]
    for row in rows[::37]:
        arch = bench.space.make(parse_cell(row["arch_str"]))
        metrics = bench.evaluate(arch)
        assert metrics["accuracy"] == pytest.approx(float(row["cifar100_test_acc_200ep"]))
        assert metrics["latency"] == pytest.approx(float(row["lat_raspi4"]))


def test_nb201_params_count_the_network_weights():
    """Hand-counted: the cell with no convolution holds only the stem, the residual blocks
    between stages, the last BatchNorm and the classifier (0.37 M weights for CIFAR-10,
    the NAS-Bench-201 API's figure); each 3x3 edge adds 9C^2 + 2C and each 1x1 edge
    C^2 + 2C in every one of the 5 cells of the 16-, 32- and 64-channel stages."""
    from hwnas.benchmarks.nb201 import parameters
    from hwnas.families.nb201.cell import EDGE_NAMES

    skip = dict.fromkeys(EDGE_NAMES, "skip_connect")
    blocks = sum(9 * a * b + 2 * b + 9 * b * b + 2 * b + a * b for a, b in ((16, 32), (32, 64)))
    base = 3 * 16 * 9 + 32 + blocks + 128 + 64 * 10 + 10
    assert parameters(skip, 10) == base
    assert parameters(dict.fromkeys(EDGE_NAMES, "none"), 10) == base
    one3 = {**skip, "edge_0_1": "nor_conv_3x3"}
    assert parameters(one3, 10) - base == 5 * sum(9 * c * c + 2 * c for c in (16, 32, 64))
    one1 = {**skip, "edge_2_3": "nor_conv_1x1"}
    assert parameters(one1, 100) - parameters(skip, 100) == 5 * sum(
        c * c + 2 * c for c in (16, 32, 64)
    )
    assert parameters(skip, 100) - base == 64 * 90 + 90


def test_nb201_params_match_the_published_counts(nb201_path):
    """The computed column equals NAS-Bench-Suite-Zero's ``params`` (millions) on its cells."""
    zc_path = nb201_path.parent / "zc_nasbench201.json.gz"
    if not zc_path.exists():
        pytest.skip(f"{zc_path} is not here")
    published = json.loads(gzip.decompress(zc_path.read_bytes()))["cifar10"]
    bench = load_nb201(nb201_path, "cifar10", "pixel3")
    for key, entry in list(published.items())[:200]:
        arch = bench.space.make(naslib_cell(key))
        assert bench.evaluate(arch)["params"] / 1e6 == pytest.approx(entry["params"]["score"])


@pytest.mark.parametrize(("layers", "widths", "seed"), [(2, 5, 0), (5, 4, 3), (7, 3, 1)])
def test_chain_front_is_the_enumerated_front(layers, widths, seed):
    """The dynamic program's front is exactly the front of every arch listed, and each
    front arch's metrics are what evaluating it gives."""
    import itertools

    from hwnas.benchmarks.chain import ChainBenchmark
    from hwnas.pareto import pareto_mask

    bench = ChainBenchmark(layers, widths, seed)
    objectives = [Objective("accuracy", "max"), Objective("latency", "min")]
    truth = bench.truth(objectives)
    every = np.array(list(itertools.product(range(widths), repeat=layers)))
    accuracy, latency = bench._values(every)
    F = np.column_stack([-accuracy, latency])
    on_front = np.nonzero(pareto_mask(F))[0]
    assert truth.front_keys == {bench._arch(every[i]).key for i in on_front}
    for i in on_front[:5]:
        metrics = bench.evaluate(bench._arch(every[i]))
        assert [-metrics["accuracy"], metrics["latency"]] == pytest.approx(F[i].tolist())
    np.testing.assert_allclose(truth.best, F.min(axis=0))
    with pytest.raises(HwnasError, match="accuracy:max and latency:min only"):
        bench.truth([Objective("accuracy", "max"), Objective("latency", "min", limit=3.0)])


def test_nb201_refuses_unknown_device_and_dataset(nb201_path):
    with pytest.raises(HwnasError, match="unknown device 'pixel9'.*pixel3"):
        load_nb201(nb201_path, "cifar10", "pixel9")
    with pytest.raises(HwnasError, match="dataset"):
        load_nb201(nb201_path, "mnist", "pixel3")


def test_effective_edges_drop_dead_branches():
    # edges 0-1, 0-2, 1-2, 0-3, 1-3, 2-3; ops: 0 none, 1 skip, 2 conv1x1, 3 conv3x3, 4 pool
    cell = np.array([[3, 3, 0, 1, 0, 0]])  # nodes 1 and 2 never reach the output
    assert effective_edges(cell).tolist() == [[0, 0, 0, 1, 0, 0]]
    chain = np.array([[3, 0, 2, 0, 0, 4]])  # 0->1->2->3 is the only path
    assert effective_edges(chain).tolist() == [[3, 0, 2, 0, 0, 4]]


def test_table_reports_missing_combinations_as_invalid():
    bench = toy_bench(drop=10)
    assert bench.space.size() == 144
    missing = [a for a in bench.space.enumerate() if a.key not in set(bench.entries()[0])]
    assert len(missing) == 10
    with pytest.raises(InvalidArch):
        bench.evaluate(missing[0])


def test_table_from_csv_errors_name_file_and_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", toy_rows())
    with pytest.raises(HwnasError, match="no column 'speed'"):
        TableBenchmark.from_csv(path, ["width"], ["acc", "speed"])
    with pytest.raises(HwnasError, match="no such file"):
        TableBenchmark.from_csv(tmp_path / "missing.csv", ["width"], ["acc"])
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(HwnasError, match="cannot read"):
        TableBenchmark.from_csv(broken, ["width"], ["acc"])


def test_scorer_gives_ratio_one_for_the_whole_table():
    bench = toy_bench()
    scorer = Scorer(bench, OBJECTIVES)
    keys, values = bench.entries()
    curve = scorer.curve([dict(zip(bench.metrics, row, strict=True)) for row in values])
    assert curve[-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve) >= -1e-12)


def test_comparison_writes_summary_curves_and_plot(tmp_path):
    """Every result file is written whole and readable by others, and a symbolic link left
    where one goes is replaced, not followed out of the folder."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text("not yours")
    (tmp_path / "summary.json").symlink_to(outside)
    summary = run_comparison(toy_bench(), OBJECTIVES, ["random", "linas"], [0, 1], 60, tmp_path)
    assert outside.read_text() == "not yours" and not (tmp_path / "summary.json").is_symlink()
    for name in ("summary.json", "timings.json", "curves.csv", "curves.html"):
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044, name
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    entry = summary["searchers"]["linas"]
    for key in ("hv_ratio@50", "hv_ratio@60", "evals_to_95", "pareto_fraction"):
        assert key in entry
    assert 0 < entry["hv_ratio@60"] <= 1 + 1e-9
    assert entry["seconds_per_candidate"] > 0
    with (tmp_path / "curves.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2 * 2 * 60
    assert (tmp_path / "curves.html").stat().st_size > 1000


def test_scorer_counts_only_feasible_archs():
    bench = toy_bench()
    limited = [OBJECTIVES[0], Objective("lat", "min", limit=18.0)]
    scorer = Scorer(bench, limited)
    keys, values = bench.entries()
    lat = dict(zip(keys, values[:, 1], strict=True))
    assert scorer.true_front_keys and all(lat[k] <= 18 for k in scorer.true_front_keys)
    slow = [dict(zip(bench.metrics, row, strict=True)) for row in values if row[1] > 18]
    assert scorer.curve(slow)[-1] == 0.0
    with pytest.raises(HwnasError, match="relax the limits"):
        Scorer(bench, [OBJECTIVES[0], Objective("lat", "min", limit=5.0)])


def test_the_nb201_family_is_the_tables_network_over_the_tables_space(nb201_path):
    """The family's extracted PyTorch network holds exactly the weights NAS-Bench-201
    reports, and its space is the table's: an arch of one is the same arch in the other."""
    from hwnas.families.nb201 import NB201Config, NB201SuperNet

    zc_path = nb201_path.parent / "zc_nasbench201.json.gz"
    if not zc_path.exists():
        pytest.skip(f"{zc_path} is not here")
    published = json.loads(gzip.decompress(zc_path.read_bytes()))["cifar10"]
    bench, net = load_nb201(nb201_path, "cifar10", "pixel3"), NB201SuperNet(NB201Config())
    assert net.space().describe()["choices"] == bench.space.describe()["choices"]
    for entry in list(published.values())[:: len(published) // 6]:
        arch = bench.space.make(naslib_cell(entry["arch"]))
        assert net.space().make(arch.to_dict()).key == arch.key
        weights = sum(p.numel() for p in net.extract(arch).parameters())
        assert weights / 1e6 == pytest.approx(entry["params"]["score"], abs=1e-6)
