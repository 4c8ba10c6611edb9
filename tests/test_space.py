import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.space import Space, categorical, ordinal


def stage_space() -> Space:
    """A stage with elastic depth 1..3; block k's choices only matter when depth > k."""
    return Space(
        [
            ordinal("depth", [1, 2, 3]),
            categorical("op0", ["conv", "pool"]),
            ordinal("kernel1", [3, 5, 7], when="depth", in_=[2, 3]),
            ordinal("kernel2", [3, 5, 7], when="depth", in_=[3]),
        ],
        name="stage",
    )


def test_equivalent_archs_share_a_key():
    space = stage_space()
    a = space.make({"depth": 1, "op0": "conv", "kernel1": 3, "kernel2": 5})
    b = space.make({"depth": 1, "op0": "conv", "kernel1": 7, "kernel2": 7})
    assert a.key == b.key and a == b and hash(a) == hash(b)
    assert a["kernel1"] is None and a["kernel2"] is None
    c = space.make({"depth": 2, "op0": "conv", "kernel1": 3, "kernel2": 5})
    assert c.key != a.key and c["kernel2"] is None


def test_size_counts_canonical_archs_and_matches_enumeration():
    space = stage_space()
    # depth 1: 2; depth 2: 2*3; depth 3: 2*3*3
    assert space.size() == 2 + 6 + 18
    archs = space.enumerate()
    assert len(archs) == len({a.key for a in archs}) == space.size()


def test_sampling_mutation_crossover_stay_canonical():
    space = stage_space()
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        for arch in (a, space.mutate(a, rng), space.crossover(a, b, rng)):
            assert space.make(arch.to_dict()) == arch
        assert space.mutate(a, rng) != a


def test_ordinal_mutation_steps_to_an_adjacent_value():
    space = Space([ordinal("width", [8, 16, 32, 64])])
    rng = np.random.default_rng(1)
    arch = space.make({"width": 16})
    assert {space.mutate(arch, rng)["width"] for _ in range(50)} == {8, 32}


def test_neighbours_differ_in_one_step():
    space = stage_space()
    arch = space.make({"depth": 2, "op0": "conv", "kernel1": 5})
    keys = {n.key for n in space.neighbours(arch)}
    assert space.make({"depth": 2, "op0": "pool", "kernel1": 5}).key in keys
    assert space.make({"depth": 2, "op0": "conv", "kernel1": 7}).key in keys
    assert space.make({"depth": 1, "op0": "conv"}).key in keys
    assert arch.key not in keys


def test_indices_round_trip_and_features_zero_when_inactive():
    space = stage_space()
    rng = np.random.default_rng(2)
    archs = [space.sample(rng) for _ in range(50)]
    idx = space.to_indices(archs)
    assert space.from_indices(idx) == archs
    X = space.features(archs)
    assert X.shape == (50, space.n_features + 3)  # one-hot plus one column per ordinal
    shallow = space.make({"depth": 1, "op0": "pool"})
    onehot = space.features([shallow])[0, : space.n_features]
    assert onehot.sum() == 2  # only depth and op0 are active


def test_bad_values_are_user_errors():
    space = stage_space()
    with pytest.raises(HwnasError, match="kernel1"):
        space.make({"depth": 2, "op0": "conv", "kernel1": 4})
    with pytest.raises(HwnasError, match="no choice"):
        space.make({"depth": 1, "op0": "conv", "width": 3})
    with pytest.raises(HwnasError, match="before it"):
        Space([ordinal("k", [3], when="depth", in_=[1]), ordinal("depth", [1])])


def test_equal_values_of_another_type_share_the_canonical_option():
    space = Space([ordinal("width", [3, 4]), categorical("flag", [True, False])])
    assert space.make({"width": 3.0, "flag": True}).key == space.make({"width": 3, "flag": 1}).key
    assert type(space.make({"width": 3.0, "flag": True})["width"]) is int


def test_corners_are_the_smallest_and_largest_archs():
    space = stage_space()
    low, high = space.corners()
    assert low.to_dict() == {"depth": 1, "op0": "conv", "kernel1": None, "kernel2": None}
    assert high.to_dict() == {"depth": 3, "op0": "conv", "kernel1": 7, "kernel2": 7}
    assert Space([categorical("op", ["a", "b"])]).corners() == []
