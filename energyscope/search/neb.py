"""Minimum-energy paths between minima: batched nudged elastic bands with a dense post-check and splitting.

The numerical core (band and string relaxation, the improved tangent, the climbing image, dense profiles) is
:mod:`energyscope.search.bands`, whose names are re-exported here. :func:`find_paths` adds the dense post-check (each band
evaluated at ``dense`` points per segment to catch maxima between images and intermediate minima) and splits bands
at intermediate minima, relaxing the pieces again. :func:`neb` is the single-band convenience used in notebooks;
:func:`energyscope.connect` uses the batched parts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from energyscope._geometry import arc_length
from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape
from energyscope.settings import checked_keywords
from energyscope.search.book import MinimaBook, default_match_tol, quench_to_minima
from energyscope.search.minima import Minima
from energyscope.search.paths import Path
from energyscope.search.saddles import band_tangent, find_saddles
from energyscope.search.bands import (  # noqa: F401 (the band core is public here too)
    BandResult, NEBError, _equal_arc, _resolve_end_maxima, _tangents, dense_profiles, finite_curvature, image_count,
    neb_forces, profile_dips, relax_bands, relax_strings, tangents)


@dataclass
class PairPaths:
    """The minimum-energy path found for one pair of minima (indices into a :class:`MinimaBook`).

    Attributes:
        i, j: the pair asked for.
        pieces: consecutive pieces ``(a, b, Path)`` from i to j; more than one when the band was split at
            intermediate minima (then ``a``/``b`` of neighbouring pieces are those minima).
        failure: "" or why no path came out (then ``pieces`` may hold the failed band, for inspection).
        n_evals: energy(+gradient) row evaluations spent on this pair (bands, dense checks, quenches).
        new_minima: indices of minima added to the book on the way.
    """

    i: int
    j: int
    pieces: list = field(default_factory=list)
    failure: str = ""
    n_evals: int = 0
    new_minima: list = field(default_factory=list)

    @property
    def split(self) -> bool:
        return len(self.pieces) > 1


def _initial_band(za: np.ndarray, zb: np.ndarray, M: int, bump: float, rng: np.random.Generator | None) -> np.ndarray:
    t = np.linspace(0.0, 1.0, M)[:, None]
    band = za[None, :] + t * (zb - za)[None, :]
    if bump > 0 and rng is not None and len(za) > 1:
        axis = zb - za
        r = rng.standard_normal(len(za))
        r -= axis * (r @ axis) / max(axis @ axis, 1e-300)
        r /= max(np.linalg.norm(r), 1e-300)
        band = band + np.sin(np.pi * t) * bump * np.linalg.norm(axis) * r[None, :]
    return band


def _resample(poly: np.ndarray, M: int) -> np.ndarray:
    """M points at equal arc length along the polyline ``poly`` (n, d), ends kept."""
    s = arc_length(poly)
    seg = np.diff(s)
    if s[-1] <= 0:
        return np.repeat(poly[:1], M, axis=0)
    t = np.linspace(0.0, s[-1], M)
    k = np.clip(np.searchsorted(s, t, side="right") - 1, 0, len(seg) - 1)
    u = np.where(seg[k] > 0, (t - s[k]) / np.where(seg[k] > 0, seg[k], 1.0), 0.0)
    out = poly[k] + u[:, None] * (poly[k + 1] - poly[k])
    out[0], out[-1] = poly[0], poly[-1]
    return out


def find_paths(land: Landscape, book: MinimaBook, pairs: list[tuple[int, int]], *, n_images: int | None = None,
               images_per_length: float = 3.0, n_min: int = 9, n_max: int = 33, climb: bool = True,
               ftol: float | None = None, ftol_rel: float = 1e-2, max_iter: int = 1000, k: Any = None,
               dense: int = 8, split: bool = True, max_splits: int = 4, bump: float = 0.0, seed: int | None = None,
               quench_rel: float = 1e-9, progress: bool = False) -> list[PairPaths]:
    """Relax bands for all ``pairs`` of book minima together, post-check them densely and split at intermediate minima.

    Bands with the same image count are relaxed in one :func:`relax_bands` batch. Each relaxed band is evaluated at
    ``dense`` points per segment; every interior dip of that profile is quenched (in one batch for all bands); a
    dip that descends to a minimum other than the band's endpoints (matched to ``book``, or Hessian-validated and
    added to it) splits the band there, and the pieces are relaxed in the next round (at most ``max_splits`` levels).

    Args:
        land: the landscape. book: known minima (grows). pairs: (i, j) indices into the book.
        n_images: fixed image count; default from :func:`image_count` (``images_per_length``, ``n_min``, ``n_max``).
        climb, ftol, ftol_rel, max_iter, k: as in :func:`relax_bands`.
        dense: post-check points per segment. split: split at intermediate minima.
        bump: initial bands bulge sideways by this fraction of their length in a random direction (for retries).
        seed: seed of that direction.
        quench_rel: dip quenches stop at gradient ``quench_rel`` × curvature × length scale.
        progress: tqdm bar of bands.

    Returns:
        One :class:`PairPaths` per pair, in order.
    """
    length = land.scales().length
    rng = np.random.default_rng(seed) if bump > 0 else None
    results = [PairPaths(int(i), int(j)) for i, j in pairs]
    # each pair holds an ordered list of segments: dict(a, b, depth, path, reason)
    segs: list[list[dict]] = [[{"a": int(i), "b": int(j), "depth": 0, "path": None}] for i, j in pairs]
    curv_all = finite_curvature(land, book.eigenvalues)
    while True:
        todo = _pending(segs)
        if not todo:
            break
        curv_all = finite_curvature(land, book.eigenvalues)
        groups = _group_segments(land, book, todo, n_images, images_per_length, n_min, n_max,
                                 climb and split and max_splits > 0)
        done_bands = []
        for (M, dip), items in groups.items():
            done_bands += _relax_group(land, book, items, M, dip, curv_all, results, rng, bump=bump, climb=climb,
                                       ftol=ftol, ftol_rel=ftol_rel, max_iter=max_iter, k=k, progress=progress)
        # dense post-check of all bands of this round in one call
        ok_bands = [(p, s, br) for p, s, br in done_bands if np.isfinite(br.energy).all()]
        pts, prof, n_rows = dense_profiles(land, [br.z for _, _, br in ok_bands], dense)
        pts, prof, n_more = _resolve_end_maxima(land, pts, prof)
        for (p, _, _), pp in zip(ok_bands, pts):
            results[p].n_evals += len(pp)
        splits = _find_splits(land, book, ok_bands, pts, prof, results, curv_all, split=split, max_splits=max_splits,
                              quench_rel=quench_rel, length=length)
        _update_segments(book, segs, done_bands, ok_bands, splits, pts, prof)
    _collect_pieces(results, segs)
    return results


def _pending(segs: list[list[dict]]) -> list[tuple[int, dict]]:
    """(pair index, segment) of every segment of ``segs`` still to relax (no path and no failure yet)."""
    return [(p, s) for p in range(len(segs)) for s in segs[p] if s["path"] is None and "reason" not in s]


def _group_segments(land: Landscape, book: MinimaBook, todo: list[tuple[int, dict]], n_images: int | None,
                    images_per_length: float, n_min: int, n_max: int, may_split: bool
                    ) -> dict[tuple[int, bool], list]:
    """The pending segments grouped by (image count M, stop at an interior dip), in order of first appearance."""
    groups: dict[tuple[int, bool], list] = {}
    for p, s in todo:
        M = n_images or image_count(land, book.z[s["a"]], book.z[s["b"]], images_per_length, n_min, n_max)
        # a first band that may be split stops at an interior minimum instead of climbing to convergence (the
        # pieces of a split relax to the end: stopping them too can send a wandering band astray)
        dip = bool(may_split and s["depth"] == 0 and not s.get("no_dip"))
        groups.setdefault((int(M), dip), []).append((p, s))
    return groups


def _relax_group(land: Landscape, book: MinimaBook, items: list, M: int, dip: bool, curv_all: np.ndarray,
                 results: list[PairPaths], rng: np.random.Generator | None, *, bump: float, climb: bool,
                 ftol: float | None, ftol_rel: float, max_iter: int, k: Any, progress: bool) -> list:
    """(pair, segment, :class:`BandResult`) for one group of segments relaxed together with M images each."""
    za = book.z[[s["a"] for _, s in items]]
    zb = book.z[[s["b"] for _, s in items]]
    init = np.stack([_resample(s["init"], M) if s.get("init") is not None else
                     _initial_band(a, b, M, bump, rng) for (_, s), a, b in zip(items, za, zb)])
    curv = np.maximum(curv_all[[s["a"] for _, s in items]], curv_all[[s["b"] for _, s in items]])
    if land.is_smooth:
        bres = relax_bands(land, za, zb, M, init=init, climb=climb, ftol=ftol, ftol_rel=ftol_rel,
                           max_iter=max_iter, k=k, curvature=curv, progress=progress, stop_at_dip=dip)
    else:   # kinks: a string with shrinking normalised steps (see relax_strings)
        bres = relax_strings(land, za, zb, M, init=init, progress=progress)
    out = []
    for (p, s), br in zip(items, bres):
        results[p].n_evals += br.n_evals
        out.append((p, s, br))
    return out


def _find_splits(land: Landscape, book: MinimaBook, ok_bands: list, pts: list[np.ndarray], prof: list[np.ndarray],
                 results: list[PairPaths], curv_all: np.ndarray, *, split: bool, max_splits: int, quench_rel: float,
                 length: float) -> dict[int, list]:
    """Band index -> [(minimum, dense index)]: dips quenching to a minimum other than the band's ends (book grows)."""
    # candidate intermediate minima
    cand_z, cand_owner, cand_pos = [], [], []
    for b_i, ((p, s, br), pz, pe) in enumerate(zip(ok_bands, pts, prof)):
        if not split or s["depth"] >= max_splits or not np.isfinite(pe).all():
            continue
        span = max(float(pe.max() - min(pe[0], pe[-1])), 0.0)
        for idx in sorted(profile_dips(pe, 1e-6 * span + 1e-12 * abs(pe).max())):
            cand_z.append(pz[idx])
            cand_owner.append(b_i)
            cand_pos.append(int(idx))
    splits: dict[int, list[int]] = {}
    if not cand_z:
        return splits
    cz = np.array(cand_z)
    owner_curv = [max(curv_all[ok_bands[o][1]["a"]], curv_all[ok_bands[o][1]["b"]]) for o in cand_owner]
    n_before = len(book)
    q = quench_to_minima(land, cz, book, gtol=land.resolvable(quench_rel) * float(np.min(owner_curv)) * length,
                         max_step=0.05 * length)
    for o in set(cand_owner):
        results[ok_bands[o][0]].n_evals += q.n_evals // len(cand_z) * cand_owner.count(o)
    conv, idx = q.converged, q.minimum
    credited: set[int] = set()
    for r in np.nonzero(idx >= n_before)[0]:
        if int(idx[r]) not in credited:  # a new minimum is credited to the first band that found it
            credited.add(int(idx[r]))
            results[ok_bands[cand_owner[r]][0]].new_minima.append(int(idx[r]))
    for r, o in enumerate(cand_owner):
        s = ok_bands[o][1]
        m = int(idx[r])
        if conv[r] and m >= 0 and m not in (s["a"], s["b"]):
            lst = splits.setdefault(o, [])
            if m not in [x for x, _ in lst]:
                lst.append((m, cand_pos[r]))
    return splits


def _update_segments(book: MinimaBook, segs: list[list[dict]], done_bands: list, ok_bands: list, splits: dict,
                     pts: list[np.ndarray], prof: list[np.ndarray]) -> None:
    """Replace split segments of ``segs`` by their pieces, mark bands to retry, and give the others their path."""
    ok_ids = {id(s): b_i for b_i, (_, s, _) in enumerate(ok_bands)}
    for p, s, br in done_bands:
        b_i = ok_ids.get(id(s))
        if b_i is not None and b_i in splits:
            lst = segs[p]
            pos = next(q for q, x in enumerate(lst) if x is s)
            segs[p] = lst[:pos] + _split_pieces(book, s, splits[b_i], pts[b_i]) + lst[pos + 1:]
            continue
        if br.reason.startswith("interior minimum"):
            # stopped early at a dip that did not split the band: relax it again from its own start, to the end
            # (restarting from where it stopped can lose the band's way: it may then not converge)
            s["no_dip"] = True
            continue
        if br.reason.startswith("band diverged") and s.get("init") is not None:
            s["init"] = None  # the relaxed stretch it started from was a bad guess: once more from a line
            continue
        path = _band_path(br, pts[b_i] if b_i is not None else None, prof[b_i] if b_i is not None else None)
        path.info["endpoints"] = (s["a"], s["b"])
        s["path"] = path
        if br.reason and (not np.isfinite(br.energy).all() or br.reason.startswith("band diverged")):
            s["reason"] = br.reason


def _split_pieces(book: MinimaBook, s: dict, at: list, pz: np.ndarray) -> list[dict]:
    """The segments of ``s`` split at the minima ``at`` [(minimum, index into the dense points pz (n, d))], in order."""
    # pieces start from the relaxed band's own stretches (resampled), not from straight lines
    chain = [(s["a"], 0)] + sorted(at, key=lambda x: x[1]) + [(s["b"], len(pz) - 1)]
    new = []
    for (a, ia), (b, ib) in zip(chain[:-1], chain[1:]):
        poly = pz[ia:ib + 1].copy()
        if len(poly) < 2:
            poly = np.vstack([book.z[a], book.z[b]])
        poly[0], poly[-1] = book.z[a], book.z[b]
        new.append({"a": a, "b": b, "depth": s["depth"] + 1, "path": None, "init": poly})
    return new


def _collect_pieces(results: list[PairPaths], segs: list[list[dict]]) -> None:
    """Fill each result's pieces (loops cut out) and failure from its pair's segments."""
    for p, r in enumerate(results):
        # a band that wanders back into a basin it already passed makes a loop of pieces: cut it out
        chain: list[dict] = []
        for s in segs[p]:
            seen = next((q for q, x in enumerate(chain) if x["a"] == s["a"]), None)
            if seen is not None:
                chain = chain[:seen]
            chain.append(s)
        segs[p] = chain
        r.pieces = [(s["a"], s["b"], s["path"]) for s in segs[p]]
        fails = [s.get("reason", "") for s in segs[p] if s.get("reason")]
        r.failure = "; ".join(fails)


def _band_path(br: BandResult, pz: np.ndarray | None, pe: np.ndarray | None) -> Path:
    """A :class:`Path` for one relaxed band: the highest image (or a higher dense point, flagged) as saddle guess."""
    finite = np.isfinite(br.energy).all()
    info = {"climbing": br.climbing, "fmax": br.fmax, "ftol": br.ftol, "n_iter": br.n_iter, "reason": br.reason,
            "missed_maximum": False}
    if not finite:
        return Path(z=br.z, energy=br.energy, saddle_z=br.z[len(br.z) // 2], saddle_energy=float("nan"),
                    converged=False, n_evals=br.n_evals, info=info)
    ci = br.ci
    sz, se = br.z[ci], float(br.energy[ci])
    pmax = float(np.max(br.energy))
    if pe is not None and np.isfinite(pe).all():
        top = int(np.argmax(pe))
        pmax = max(pmax, float(pe[top]))
        span = float(pe.max() - min(pe[0], pe[-1]))
        if pe[top] > se + 1e-6 * span:
            sz, se = pz[top], float(pe[top])
            info["missed_maximum"] = True
    return Path(z=br.z, energy=br.energy, saddle_z=np.array(sz), saddle_energy=se, converged=br.converged,
                n_evals=br.n_evals, path_max_energy=pmax, saddle_validated=False, info=info)


# ---------------------------------------------------------------------------------------------------------- single band
@checked_keywords()
def neb(land: Landscape, z_start: Any, z_end: Any, n_images: int | None = None, *, climb: bool = True,
        ftol: float | None = None, ftol_rel: float = 1e-2, max_iter: int = 1000, k: float | None = None,
        refine: bool = True, split: bool = True, dense: int = 8, progress: bool = False) -> Path:
    """Minimum-energy path between two points (normally minima) by climbing-image NEB, checked and refined.

    Args:
        land: the landscape.
        z_start, z_end: (d,) endpoints.
        n_images: images including endpoints; default from the distance (:func:`image_count`, 9 to 33).
        climb: use a climbing image once the band is roughly converged.
        ftol: absolute force tolerance, nats per latent unit (default unit-free, ``ftol_rel`` of energy span / length).
        max_iter: FIRE steps at most per band.
        k: spring constant, nats per latent unit² (default 0.02 × the stiffest endpoint curvature).
        refine: refine the saddle by exact-Hessian eigenvector following and validate it (index 1, push-off descents
            reach two different minima, energy above both).
        split: split the band at intermediate minima found by the dense check (their pieces are relaxed again).
        dense: points per segment of the dense check.
        progress: show a progress bar.

    Returns:
        A :class:`~energyscope.search.network.Path`: ``z`` (M, d), ``energy`` (M,), ``saddle_z`` (d,) (the refined saddle
        when validated, else the highest point), ``saddle_energy``, ``converged``, ``n_evals`` (energy+gradient
        rows), ``path_max_energy`` (the highest energy along the dense path — an upper bound on the barrier),
        ``saddle_validated``. When split, ``info["pieces"]`` holds one Path per piece and
        ``info["intermediate_minima"]`` the minima (k, d) in between; ``info["saddle"]`` describes the validation; ``info["reason"]`` says what failed.

    Raises:
        NEBError: endpoints of the wrong shape, non-finite energy at an endpoint, or identical endpoints.
    """
    za = np.asarray(to_numpy(z_start), dtype=np.float64).reshape(-1)
    zb = np.asarray(to_numpy(z_end), dtype=np.float64).reshape(-1)
    for name, z, given in (("z_start", za, z_start), ("z_end", zb, z_end)):
        if z.shape != (land.dim,):
            raise NEBError(f"{name} must have shape ({land.dim},), got {tuple(np.shape(given))}")
        if not np.isfinite(z).all():
            raise NEBError(f"{name} contains non-finite values")
    ends = np.vstack([za, zb])
    e_ends = to_numpy(land.energy(ends))
    if not np.isfinite(e_ends).all():
        raise NEBError(f"non-finite energy at {'z_start' if not np.isfinite(e_ends[0]) else 'z_end'}: {e_ends}")
    match_tol = default_match_tol(land)
    if np.linalg.norm(zb - za) <= match_tol:
        raise NEBError(f"z_start and z_end are identical (distance {np.linalg.norm(zb - za):.3g} <= {match_tol:.3g});"
                       " a path needs two different points")
    eig = to_numpy(torch.linalg.eigvalsh(land.hessian(ends)))
    book = MinimaBook(Minima(z=ends, energy=e_ends, hits=np.zeros(2, dtype=int), hessian_eigenvalues=eig,
                             dedup_tol=match_tol), match_tol)
    pp = find_paths(land, book, [(0, 1)], n_images=n_images, climb=climb, ftol=ftol, ftol_rel=ftol_rel,
                    max_iter=max_iter, k=k, dense=dense, split=split, progress=progress)[0]
    pieces = [path for _, _, path in pp.pieces]
    n_evals = pp.n_evals
    if refine and not pp.failure:
        n_evals = _refine_pieces(land, book, pieces, n_evals)
    if len(pieces) == 1:
        path = pieces[0]
        path.n_evals = n_evals
        path.info["intermediate_minima"] = np.zeros((0, land.dim))
        path.info["intermediate_minima_energy"] = np.zeros(0)
        if pp.failure:
            path.info["reason"] = pp.failure
        return path
    top = max(range(len(pieces)), key=lambda q: pieces[q].saddle_energy)
    inter = [a for a, _, _ in pp.pieces[1:]]
    z = np.vstack([pieces[0].z] + [p.z[1:] for p in pieces[1:]])
    e = np.concatenate([pieces[0].energy] + [p.energy[1:] for p in pieces[1:]])
    return Path(z=z, energy=e, saddle_z=pieces[top].saddle_z, saddle_energy=pieces[top].saddle_energy,
                converged=all(p.converged for p in pieces), n_evals=n_evals,
                path_max_energy=max(p.path_max_energy for p in pieces),
                saddle_validated=pieces[top].saddle_validated,
                info={"pieces": pieces, "intermediate_minima": book.z[inter], "intermediate_minima_energy":
                      book.energy[inter], "reason": pp.failure, "saddle": pieces[top].info.get("saddle")})


def _refine_pieces(land: Landscape, book: MinimaBook, pieces: list[Path], n_evals: int) -> int:
    """Refine and validate each piece's saddle guess in place; returns ``n_evals`` plus the rows this spent."""
    tan = [band_tangent(p.z, p.saddle_z) for p in pieces]
    recs = find_saddles(land, np.array([p.saddle_z for p in pieces]), book,
                        tangents=np.array([t for t, _ in tan]), spans=np.array([s for _, s in tan]),
                        bands=[p.z for p in pieces])
    for path, rec in zip(pieces, recs):
        n_evals += rec.n_evals
        path.info["saddle"] = {"valid": rec.valid, "reason": rec.reason, "minima": rec.minima,
                               "negative_eigenvalue": rec.negative_eigenvalue, "eigenvalues": rec.eigenvalues,
                               "grad_norm": rec.grad_norm}
        if rec.valid:
            path.saddle_z, path.saddle_energy, path.saddle_validated = rec.z, rec.energy, True
    return n_evals


__all__ = ["neb", "relax_bands", "relax_strings", "find_paths", "dense_profiles", "profile_dips", "tangents", "neb_forces",
           "image_count", "BandResult", "PairPaths", "NEBError"]

