"""Grouping rules (GroupByCosine, GroupByDistance) against the older metric/threshold/relative keywords."""

import dataclasses

import numpy as np
import pytest

import flowcore
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli.demo import demo_paths
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping import group_points
from flowcore.dynamics.grouping_rules import GroupByCosine, GroupByDistance, GroupingRule, grouping_from_settings
from flowcore.dynamics.trajectories import iterate
from flowcore.errors import BadInputError, ParameterError
from flowcore.io import load_array
from flowcore.runtime.latent_map import LatentMap

from _graphs import linear_pair

# (rule, the older keywords that mean the same)
CASES = [
    (GroupByCosine(0.99), dict(metric="cosine", threshold=0.99)),
    (GroupByCosine(0.9), dict(metric="cosine", threshold=0.9)),
    (GroupByDistance(0.5), dict(metric="euclidean", threshold=0.5)),
    (GroupByDistance(1e-3, relative=True), dict(metric="euclidean", threshold=1e-3, relative=True)),
    (GroupByDistance(0.05, relative=True), dict(metric="euclidean", threshold=0.05, relative=True)),
]


def _clustered(seed, n=1500, k=6, centres=12, spread=0.05):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, k)) * 3
    return (c[rng.integers(0, centres, n)] + rng.normal(size=(n, k)) * spread).astype(np.float32)


@pytest.fixture(scope="module")
def random_traj(tmp_path_factory):
    """f = identity: every start converges at once, so the endpoints are the random starts."""
    k = 6
    folder = tmp_path_factory.mktemp("ident") / "b"
    lmap = LatentMap(FlowBundle.write(folder, *linear_pair(np.eye(k), np.zeros(k))), providers="cpu")
    return iterate(lmap, _clustered(0), progress=False)


@pytest.fixture(scope="module")
def digits_traj():
    bundle, data = demo_paths()
    lmap = LatentMap(bundle, providers="cpu")
    return iterate(lmap, lmap.encode(load_array(data)), progress=False)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.centres, b.centres)
    np.testing.assert_array_equal(a.representatives, b.representatives)
    assert a.settings == b.settings


@pytest.mark.parametrize("rule,old", CASES, ids=[repr(c[0]) for c in CASES])
def test_rule_equals_old_keywords_on_random_endpoints(random_traj, rule, old):
    assert (random_traj.status == 0).all()
    new = find_attractors(random_traj, grouping=rule)
    _assert_same(new, find_attractors(random_traj, **old))
    assert new.n_attractors > 1
    # the rule alone labels the points exactly as the kernel wrapper does
    np.testing.assert_array_equal(rule.group(random_traj.flat_final), group_points(random_traj.flat_final, **old))


@pytest.mark.parametrize("rule,old", CASES, ids=[repr(c[0]) for c in CASES])
def test_rule_equals_old_keywords_on_digits_endpoints(digits_traj, rule, old):
    new = find_attractors(digits_traj, grouping=rule)
    _assert_same(new, find_attractors(digits_traj, **old))
    assert new.n_attractors >= 1 and new.counts.sum() == (digits_traj.status == 0).sum()


def test_settings_are_the_keys_every_count_carries(digits_traj):
    default = find_attractors(digits_traj)
    assert default.settings == find_attractors(digits_traj, grouping=GroupByCosine(0.99)).settings
    s = default.settings
    assert (s["metric"], s["threshold"], s["relative"]) == ("cosine", 0.99, None)
    s = find_attractors(digits_traj, grouping=GroupByDistance(1e-3, relative=True)).settings
    assert (s["metric"], s["threshold"], s["relative"]) == ("euclidean", 0.001, True)
    assert GroupByDistance(0.1).settings() == {"metric": "euclidean", "threshold": 0.1, "relative": False}
    assert GroupByCosine().settings() == {"metric": "cosine", "threshold": 0.99, "relative": None}


def test_old_keyword_defaults_kept(digits_traj):
    # metric="euclidean" without a threshold used 0.99 (the keyword default) before the configs; it still does
    _assert_same(find_attractors(digits_traj, metric="euclidean"),
                 find_attractors(digits_traj, grouping=GroupByDistance(0.99)))
    assert grouping_from_settings("euclidean") == GroupByDistance(1e-3)  # the CLI's per-metric default
    assert grouping_from_settings("cosine", None, True) == GroupByCosine(0.99)  # relative ignored for cosine


@pytest.mark.parametrize("make", [
    lambda: GroupByCosine(1.0),
    lambda: GroupByCosine(-1.5),
    lambda: GroupByCosine(float("nan")),
    lambda: GroupByCosine("0.99"),
    lambda: GroupByCosine(True),
    lambda: GroupByDistance(-1e-3),
    lambda: GroupByDistance(None),
    lambda: GroupByDistance(1e-3, relative=1),
    lambda: grouping_from_settings("manhattan", 0.1),
])
def test_bad_parameters_refused(make):
    with pytest.raises(ParameterError) as info:
        make()
    assert isinstance(info.value, BadInputError) and "\n" not in str(info.value)


def test_configs_are_frozen_keyword_only_and_exported():
    rule = GroupByDistance(1e-3, relative=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.threshold = 1.0
    with pytest.raises(TypeError):
        GroupByDistance(1e-3, True)  # relative is keyword-only
    assert GroupByCosine(0.99) == GroupByCosine(0.99) and hash(GroupByCosine(0.99)) == hash(GroupByCosine(0.99))
    assert isinstance(rule, GroupingRule) and "To add one, implement" in GroupingRule.__doc__
    assert flowcore.GroupByCosine is GroupByCosine and flowcore.GroupByDistance is GroupByDistance
    assert {"GroupByCosine", "GroupByDistance"} <= set(flowcore.__all__)
    assert {"GroupByCosine", "GroupByDistance"} <= set(flowcore.dynamics.__all__)


def test_find_attractors_refuses_both_spellings(random_traj):
    with pytest.raises(ParameterError, match="not both") as info:
        find_attractors(random_traj, grouping=GroupByCosine(0.99), metric="cosine")
    assert "\n" not in str(info.value)
    with pytest.raises(ParameterError, match="not both"):
        find_attractors(random_traj, grouping=GroupByDistance(0.1), relative=True)
    with pytest.raises(ParameterError, match="GroupingRule"):
        find_attractors(random_traj, grouping="cosine")


def test_a_new_rule_plugs_in(random_traj):
    """The base's contract is enough: a rule grouping everything into one attractor."""

    @dataclasses.dataclass(frozen=True)
    class OneGroup(GroupingRule):
        def group(self, points):
            return np.zeros(len(points), np.int64)

        def settings(self):
            return {"metric": "none", "threshold": 0.0, "relative": None}

    att = find_attractors(random_traj, grouping=OneGroup())
    assert att.n_attractors == 1 and att.counts.tolist() == [len(random_traj)]
    assert att.settings["metric"] == "none"
