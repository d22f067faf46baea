"""Basin tracking (energyscope.tracking) on constructed series whose history is known exactly.

The series: Gaussian-mixture landscapes over six "epochs", one minimum per well-separated component. Over the epochs
two components move apart, one is born, one splits in two, two approach and merge, and one vanishes. The history
tracked from the analyses must be exactly the constructed one: the same events between the same basins, the same
tracks with the same origins, parents, fates and merge targets.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import energyscope as es
from energyscope.errors import BadArgumentError
from energyscope.sweep.result import snapshot_of
from energyscope.tracking import Snapshot, assign, match_distance, track
from mixture_helpers import Mixture

S = 0.3   # component width: components 1.3 or more apart (> 4 s) are separate minima
# component name -> mean, per epoch (equal weights)
SERIES = [
    {"A": (-3.0, 0.0), "B": (3.0, 0.0), "D": (0.0, -4.0)},
    {"A": (-3.4, 0.0), "B": (3.4, 0.0), "D": (0.0, -4.0), "C": (3.4, 4.5)},               # A, B apart; C born
    {"A": (-3.4, -0.6), "A'": (-3.4, 0.75), "B": (3.4, 0.7), "C": (3.4, 3.8), "D": (0.0, -4.0)},  # A splits
    {"A": (-3.4, -0.6), "A'": (-3.4, 0.75), "B": (3.4, 1.5), "C": (3.4, 3.0), "D": (0.0, -4.0)},  # B, C approach
    {"A": (-3.4, -0.6), "A'": (-3.4, 0.75), "B": (3.4, 2.15), "D": (0.0, -4.0)},          # C merges into B
    {"A": (-3.4, -0.6), "A'": (-3.4, 0.75), "B": (3.4, 2.15)},                            # D vanishes
]
# what happened, by component names: (kind, epoch, before, after)
EXPECTED = [("birth", 1, (), ("C",)), ("split", 2, ("A",), ("A", "A'")), ("merge", 4, ("B", "C"), ("B",)),
            ("death", 5, ("D",), ())]
# tracks: component -> (origin, parent component, fate, merged into)
EXPECTED_TRACKS = {"A": ("first", None, "last", None), "B": ("first", None, "last", None),
                   "D": ("first", None, "death", None), "C": ("birth", None, "merge", "B"),
                   "A'": ("split", "A", "last", None)}


def _decoder(z: torch.Tensor) -> torch.Tensor:
    """A fixed smooth map to 2 × 3 "images", the same at every epoch (so prototypes follow the minima)."""
    return torch.stack([torch.tanh(z[:, 0] / 3), torch.tanh(z[:, 1] / 3), torch.sin(z[:, 0] / 4),
                        torch.cos(z[:, 1] / 4), torch.tanh((z[:, 0] + z[:, 1]) / 5), torch.tanh(z[:, 0] * z[:, 1] / 9)],
                       dim=1).reshape(-1, 2, 3)


def _landscape(epoch: int, decoder: bool) -> es.Landscape:
    means = np.array(list(SERIES[epoch].values()))
    return es.Landscape(Mixture(means=means, weights=np.full(len(means), 1 / len(means)), s=S), dim=2,
                        decoder=_decoder if decoder else None)


def _names(epoch: int, z: np.ndarray) -> list[str]:
    """The component each minimum of epoch ``epoch`` belongs to (nearest mean; all within 0.2 of one)."""
    names = list(SERIES[epoch])
    means = np.array(list(SERIES[epoch].values()))
    d = np.linalg.norm(z[:, None] - means[None], axis=2)
    assert (d.min(axis=1) < 0.2).all() and len(set(d.argmin(axis=1))) == len(z)
    return [names[k] for k in d.argmin(axis=1)]


def _by_name(history: es.History, snapshots: list[Snapshot]) -> tuple[list, dict]:
    names = [_names(t, s.z) for t, s in enumerate(snapshots)]
    events = [(e.kind, e.step, tuple(sorted(names[e.step - 1][b] for b in e.before)),
               tuple(sorted(names[e.step][b] for b in e.after))) for e in history.events]
    component = {tr.id: names[tr.start][tr.basin[tr.start]] for tr in history.tracks}
    tracks = {component[tr.id]: (tr.origin, None if tr.parent is None else component[tr.parent], tr.fate,
                                 None if tr.merged_into is None else component[tr.merged_into])
              for tr in history.tracks}
    return events, tracks, component


@pytest.fixture(scope="module")
def analyses():
    return [es.analyze(_landscape(t, decoder=True), seed=0, masses=False, progress=False)
            for t in range(len(SERIES))]


def test_tracked_history_of_analysed_series_is_the_constructed_one(analyses):
    snaps = [snapshot_of(a, f"epoch{t}", epoch=t) for t, a in enumerate(analyses)]
    for t, s in enumerate(snaps):   # each analysis found exactly the constructed minima
        assert sorted(_names(t, s.z)) == sorted(SERIES[t])
        assert s.prototypes is not None and s.prototypes.shape[1:] == (2, 3)
    history = track(snaps)
    events, tracks, component = _by_name(history, snaps)
    assert events == EXPECTED
    assert tracks == EXPECTED_TRACKS
    assert len(history.tracks) == 5
    # every track holds its component's minimum at every epoch where the component exists
    for tr in history.tracks:
        name = component[tr.id]
        alive = [t for t in range(len(SERIES)) if name in SERIES[t] and
                 not (name == "A'" and t < 2) and not (name == "C" and t >= 4)]
        assert list(tr.steps) == alive
        for t in alive:
            assert _names(t, snaps[t].z)[tr.basin[t]] == name
    # the energies along a track are its minimum's energies
    energy = history.series("energy")
    for tr in history.tracks:
        for t in tr.steps:
            assert energy[tr.id, t] == snaps[t].energy[tr.basin[t]]


def test_positions_alone_give_the_same_history(analyses):
    """Without a decoder the minima's positions decide alone, and the history is the same."""
    snaps = [snapshot_of(a, f"epoch{t}", epoch=t) for t, a in enumerate(analyses)]
    for s in snaps:
        s.prototypes = None
    events, tracks, _ = _by_name(track(snaps), snaps)
    assert events == EXPECTED and tracks == EXPECTED_TRACKS


def test_history_survives_its_saved_form(analyses):
    from energyscope.io.codec import Decoder, Encoder
    snaps = [snapshot_of(a, f"epoch{t}", epoch=t) for t, a in enumerate(analyses)]
    history = track(snaps)
    enc = Encoder()
    doc = enc.encode(history.to_dict())
    back = es.History.from_dict(Decoder(enc.arrays).decode(doc))
    assert back.signature() == history.signature()
    assert [(t.origin, t.fate, t.parent, t.merged_into, list(t.basin)) for t in back.tracks] == \
        [(t.origin, t.fate, t.parent, t.merged_into, list(t.basin)) for t in history.tracks]
    np.testing.assert_array_equal(back.series("energy"), history.series("energy"))


def _snap(name: str, z) -> Snapshot:
    z = np.asarray(z, dtype=float)
    return Snapshot(name, z, np.arange(len(z), dtype=float))


def test_a_basin_that_jumps_farther_than_half_its_spacing_is_no_match():
    """A minimum that moves by more than half the distance to its neighbour is not the same basin: the answer is
    a death and a birth, not a guess."""
    s0 = _snap("a", [[0.0, 0.0], [4.0, 0.0]])
    s1 = _snap("b", [[0.0, 0.0], [4.0, 2.6]])     # 2.6 > |(4, 2.6)| / 2 = 2.39 (its new spacing; 4 before): no match
    h = track([s0, s1])
    assert h.signature() == [("death", 1, (1,), ()), ("birth", 1, (), (1,))]
    # how far from a match: 2.6 over half of max(4, |(4, 2.6)|), for the death and for the birth (the same pair)
    near = 2.6 / (0.5 * np.hypot(4.0, 2.6))
    assert h.events[0].nearest == pytest.approx(near) and h.events[1].nearest == pytest.approx(near)
    s1 = _snap("b", [[0.0, 0.0], [4.0, 1.8]])     # 1.8 < 2: the same basin
    assert track([s0, s1]).signature() == []


def test_assignment_prefers_the_nearer_and_leaves_the_far_unmatched():
    D = np.array([[0.2, 0.8], [0.3, 5.0]])
    assert sorted(assign(D)) == [(0, 1), (1, 0)]        # 0.8 + 0.3 < 0.2 + 0.5 + 0.5 (two left unmatched)
    D = np.array([[0.2, 0.95], [0.3, 5.0]])
    assert assign(D) == [(0, 0)]                         # 0.2 + 0.5 + 0.5 < 0.95 + 0.3
    assert assign(np.array([[1.5]])) == []               # beyond the radius: no match
    assert assign(np.zeros((0, 3))) == []


def test_merge_and_split_at_once_is_a_regroup():
    s0 = _snap("a", [[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    s1 = _snap("b", [[0.4, 0.3], [0.6, -0.3], [10.0, 0.0]])
    s1b = _snap("c", [[0.5, 0.0], [10.0, 0.0]])
    assert track([s0, s1b]).signature() == [("merge", 1, (0, 1), (0,))]
    h = track([s1b, s0])
    assert h.signature() == [("split", 1, (0,), (0, 1))]
    assert match_distance(s0, s1).shape == (3, 3)


def test_a_lone_minimum_matches_whatever_follows():
    s0 = _snap("a", [[0.0, 0.0]])
    s1 = _snap("b", [[5.0, 0.0], [-5.0, 0.0], [0.0, 9.0]])
    h = track([s0, s1])
    assert h.signature() == [("split", 1, (0,), (0, 1, 2))]
    assert h.tracks[0].basin[1] == 0   # the nearest continues the track (5 < 9; ties by index)


def test_bad_snapshots_and_radius_are_one_clear_error():
    with pytest.raises(BadArgumentError, match="energy has 1 entries for 2 minima"):
        Snapshot("x", np.zeros((2, 2)), [0.0])
    with pytest.raises(BadArgumentError, match="radius must be a positive number"):
        track([_snap("a", [[0.0]])], radius=0)
    with pytest.raises(BadArgumentError, match="at least one snapshot"):
        track([])
