from pathlib import Path

import pytest

NB201 = Path(__file__).resolve().parents[2] / "shared/benchmarks/nb201/nb201_acc_latency.csv.gz"


@pytest.fixture(scope="session")
def nb201_path() -> Path:
    if not NB201.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201}")
    return NB201
