import numpy as np

from torch_wm_backend.world_model import blend


def test_pairs_right_counts_ordered_pairs_ties_half_and_skips_equal_costs():
    costs = np.array([1.0, 2.0, 3.0, 3.0])
    assert blend.pairs_right(np.array([3.0, 2.0, 1.0, 0.0]), costs) == (5.0, 5)
    assert blend.pairs_right(np.array([1.0, 2.0, 3.0, 3.0]), costs) == (0.0, 5)
    assert blend.pairs_right(np.zeros(4), costs) == (2.5, 5)


def test_the_companions_weight_follows_its_lead_in_pairs_ranked_right():
    evidence = blend.Evidence()
    assert evidence.weight() == 0   # not checked yet
    costs = np.arange(1.0, 9.0)
    evidence.add(-costs, -costs, costs)          # both perfect
    assert evidence.weight() == 0.5
    evidence.add(costs, -costs, costs)           # the world model wrong on every pair this time
    assert evidence.weight() > 0.99              # 50 points behind over both rounds
    close = blend.Evidence()
    close.add(-costs, np.where(costs < 3, costs, -costs), costs)   # the companion: 1 pair of 28 wrong
    assert 0.35 < close.weight() < 0.5               # 3.6 points behind: a little less than half
    worse = blend.Evidence()
    worse.add(-costs, costs, costs)
    assert worse.weight() < 1e-4


def test_combined_scores_are_positive_and_on_one_scale_between_updates():
    evidence = blend.Evidence(scales=(blend.Scale.of(np.array([0.0, 10.0])),
                                      blend.Scale.of(np.array([0.0, 1.0]))))
    evidence.add(np.array([2.0, 1.0]), np.array([2.0, 1.0]), np.array([1.0, 2.0]))
    a = evidence.combine(np.array([10.0, 0.0, 5.0]), np.array([1.0, 0.0, 0.5]))
    b = evidence.combine(np.array([5.0]), np.array([0.5]))   # another call, another batch
    assert np.all(a > 0) and a[0] > a[2] > a[1] and np.isclose(a[2], b[0])
