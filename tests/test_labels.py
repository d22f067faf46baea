"""Label agreement against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from energyscope.interpret.labels import LabelAgreement, cluster_scores, contingency, label_agreement

LABELS = np.array([0, 0, 1, 1, 2, 2])


def test_perfect_and_permuted_assignments_score_one():
    for pred in (LABELS, np.array([2, 2, 0, 0, 1, 1]), np.array([7, 7, -1, -1, 3, 3])):
        s = cluster_scores(pred, LABELS)
        for v in (s.purity, s.nmi, s.ari, s.v_measure, s.homogeneity, s.completeness, s.hungarian_accuracy):
            assert v == pytest.approx(1.0)
        assert (s.n_clusters, s.n_classes, s.n) == (3, 3, 6)


def test_merged_classes_match_hand_computed_values():
    s = cluster_scores([0, 0, 0, 0, 1, 1], LABELS)
    # purity: clusters {0,0,1,1} and {2,2} -> (2 + 2) / 6
    assert s.purity == pytest.approx(4 / 6)
    # homogeneity 1 - H(C|K)/H(C) with H(C|K) = (4/6) ln 2, H(C) = ln 3; completeness 1 (no class is split)
    h = 1 - (4 / 6) * math.log(2) / math.log(3)
    assert s.homogeneity == pytest.approx(h)
    assert s.completeness == pytest.approx(1.0)
    assert s.v_measure == pytest.approx(2 * h / (1 + h))
    assert s.nmi == pytest.approx(2 * h / (1 + h))          # arithmetic NMI equals the V-measure
    # ARI: sum C(n_ij,2)=3, rows C(4,2)+C(2,2)=7, cols 3*C(2,2)=3, C(6,2)=15 -> (3-1.4)/(5-1.4) = 4/9
    assert s.ari == pytest.approx(4 / 9)
    assert s.hungarian_accuracy is None                       # 2 clusters, 3 classes: no one-to-one matching


def test_hungarian_accuracy_with_mistakes():
    s = cluster_scores([1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1])
    assert s.hungarian_accuracy == pytest.approx(5 / 6)       # 1 -> label 0 (2 right), 0 -> label 1 (3 right)
    assert s.purity == pytest.approx(5 / 6)


def test_contingency_keeps_negative_codes_as_their_own_rows():
    rows, cols, counts = contingency([0, -1, 1, 1, -2], ["a", "a", "b", "b", "b"])
    assert rows.tolist() == [-2, -1, 0, 1] and cols.tolist() == ["a", "b"]
    np.testing.assert_array_equal(counts, [[0, 1], [1, 0], [1, 0], [0, 2]])


def test_label_agreement_with_hdbscan_on_separated_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    z = np.concatenate([c + 0.2 * rng.standard_normal((60, 2)) for c in centres])
    labels = np.repeat([0, 1, 2], 60)
    basin = labels.copy()
    basin[:3] = -1                                            # three points quenched elsewhere: counted, not dropped
    la = label_agreement(basin, labels, z, min_cluster_size=10)
    assert la.n_unassigned == 3
    assert la.basins.n_clusters == 4 and la.basins.purity == pytest.approx(1.0)
    assert la.confusion.sum() == 180 and la.rows.tolist() == [-1, 0, 1, 2]
    assert la.hdbscan.ari > 0.95 and la.hdbscan_noise < 0.05
    assert la.hdbscan_vs_basins.nmi > 0.9
    back = LabelAgreement.from_dict(la.to_dict())
    assert back.hdbscan.ari == la.hdbscan.ari
    np.testing.assert_array_equal(back.confusion, la.confusion)


def test_label_errors_name_the_problem():
    with pytest.raises(ValueError, match="6 entries but labels have 5"):
        cluster_scores(np.zeros(6), np.zeros(5))
    with pytest.raises(ValueError, match="latents have 4 rows"):
        label_agreement(np.zeros(6), np.zeros(6), np.zeros((4, 2)))
