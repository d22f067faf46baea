"""Start points for the minima search: where the restarts begin.

Sources (split evenly among those usable on a landscape):

- ``"prior"``: samples of the base N(0, σ_base² I) (without a base prior: uniform in the start box);
- ``"reference"``: reference latents (the encoded data), drawn without replacement;
- ``"box"``: uniform in the start box;
- ``"sampler"``: the model's own short-run Langevin sampler (only where the landscape records its settings,
  ``land.sampler``): the states the model itself visits.

The start box is the user's ``bounds``, else the reference mean (or the origin) ± 3 σ_z, grown by
:func:`start_box` until U rises towards every face: without reference latents σ_z is only a guess, and basins far
from the origin (a density with distant components) were never started in.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from energyscope.errors import BadArgumentError
from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape
from energyscope.sampling import short_run_samples

SOURCES = ("prior", "reference", "box", "sampler")


def check_bounds(bounds: Any, d: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise BadArgumentError(f"bounds must be a pair (lo, hi) of scalars or ({d},) arrays, got {bounds!r}")
    out = []
    for name, b in zip(("lo", "hi"), bounds):
        a = np.asarray(to_numpy(b), dtype=np.float64)
        if a.ndim == 0:
            a = np.full(d, float(a))
        if a.shape != (d,):
            raise BadArgumentError(f"bounds {name} must be a scalar or have shape ({d},), got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise BadArgumentError(f"bounds {name} must be finite, got {a}")
        out.append(a)
    lo, hi = out
    if not np.all(hi > lo):
        bad = np.flatnonzero(~(hi > lo))
        raise BadArgumentError(f"bounds need lo < hi in every dimension; not so in dimension(s) {bad.tolist()[:10]}")
    return lo, hi


def check_starts(starts: Any, d: int) -> np.ndarray:
    a = np.asarray(to_numpy(starts), dtype=np.float64)
    if a.ndim == 1 and d == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != d:
        raise BadArgumentError(f"starts must have shape (R, {d}), got {a.shape}")
    if len(a) == 0:
        raise BadArgumentError("starts is empty: give at least one start point")
    return a


def scale_box(land: Landscape, width: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The default box: the reference mean (else the origin) ± ``width`` σ_z, per dimension, as (lo, hi) (d,) each."""
    sc = land.scales()
    center = land.reference.mean(axis=0) if land.reference is not None and len(land.reference) else np.zeros(land.dim)
    return center - width * sc.sigma_z, center + width * sc.sigma_z


def make_starts(land: Landscape, n: int, rng: np.random.Generator, sources: Sequence[str] = SOURCES,
                bounds: Any = None) -> tuple[np.ndarray, dict]:
    """n start points (n, d) split evenly over the usable ``sources``, and how many came from each.

    ``"prior"``: samples of the base N(0, σ_base² I) (without a base prior: uniform in the default box, see
    :func:`scale_box`); ``"reference"``: reference latents drawn without replacement (skipped when there are none);
    ``"box"``: uniform in ``bounds`` = (lo, hi), else in the default box; ``"sampler"``: the model's short-run
    sampler (:func:`energyscope.sampling.short_run_samples`), skipped unless ``land.sampler`` records its settings.
    (:func:`~energyscope.search.minima.find_minima` passes the grown :func:`start_box` as ``bounds``.)
    """
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise BadArgumentError(f"unknown start source(s) {unknown}; use any of {SOURCES}")
    d = land.dim
    box = check_bounds(bounds, d) if bounds is not None else scale_box(land)
    has_reference = land.reference is not None and len(land.reference) > 0
    usable = [s for s in dict.fromkeys(sources)
              if (s != "reference" or has_reference) and (s != "sampler" or bool(land.sampler))]
    if not usable:
        raise BadArgumentError(f"no usable start source among {tuple(sources)} (no reference latents or sampler settings "
                         "on this landscape); add 'prior' or 'box', or pass starts=")
    share = {s: n // len(usable) for s in usable}
    for s in usable[: n - sum(share.values())]:
        share[s] += 1
    if "reference" in share and share["reference"] > len(land.reference):
        extra = share["reference"] - len(land.reference)
        share["reference"] = len(land.reference)
        others = [s for s in usable if s != "reference"]
        if others:
            for i in range(extra):
                share[others[i % len(others)]] += 1
    parts = []
    for s in usable:
        k = share[s]
        if k == 0:
            continue
        if s == "prior" and land.base_prior is not None:
            parts.append(rng.standard_normal((k, d)) * land.base_sigma)
        elif s == "reference":
            parts.append(land.reference[rng.choice(len(land.reference), size=k, replace=False)])
        elif s == "sampler":
            z, _ = short_run_samples(land, k, seed=int(rng.integers(2**62)), progress=False)
            parts.append(z)
        else:  # "box", or "prior" without a base distribution
            parts.append(box[0] + (box[1] - box[0]) * rng.random((k, d)))
    return np.concatenate(parts, axis=0), {s: share[s] for s in usable}


def _face_points(lo: np.ndarray, hi: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each of the 2d faces of the box, n points on the face and their partners half way to the centre.

    Returns (outer, inner), each (2d, n, d): face f = 2 i + s lies at coordinate i = lo_i (s = 0) or hi_i (s = 1);
    the other coordinates are uniform in the box and shared by each outer/inner pair.
    """
    d = len(lo)
    centre = 0.5 * (lo + hi)
    base = lo + (hi - lo) * rng.random((2 * d, n, d))
    outer, inner = base.copy(), base.copy()
    for i in range(d):
        for s, edge in ((0, lo[i]), (1, hi[i])):
            outer[2 * i + s, :, i] = edge
            inner[2 * i + s, :, i] = 0.5 * (centre[i] + edge)
    return outer, inner


def _rising_faces(land: Landscape, lo: np.ndarray, hi: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(2d,) bool: U rises towards face f (the median over n paired points of U(face) − U(half way) is > 0).

    A face where U is +inf counts as rising; NaN differences count as not rising (nothing is known there).
    """
    outer, inner = _face_points(lo, hi, n, rng)
    d = len(lo)
    u = to_numpy(land.energy(np.concatenate([outer.reshape(-1, d), inner.reshape(-1, d)])))
    u_out, u_in = u[: 2 * d * n].reshape(2 * d, n), u[2 * d * n:].reshape(2 * d, n)
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isposinf(u_out) & ~np.isposinf(u_in), np.inf, u_out - u_in)
    # U = −inf half way (a fall with no bottom) is not "rising", whatever the face shows; NaN: nothing is known
    diff = np.where(np.isnan(diff) | np.isneginf(u_in), -np.inf, diff)
    return np.median(diff, axis=1) > 0


def start_box(land: Landscape, bounds: Any = None, *, max_doublings: int = 4, n_per_face: int = 8,
              seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """The box that ``"box"`` starts (and ``"prior"`` starts without a base prior) are drawn from.

    With ``bounds`` = (lo, hi) the box is that (checked, never moved). Otherwise it starts as :func:`scale_box`
    and, in each dimension with a face towards which U does not rise, both faces are moved out, doubling their
    distance from the centre, up to ``max_doublings`` times (so at most 2^max_doublings × 3 σ_z). "Rises" is judged on ``n_per_face`` paired
    points per face (:func:`_rising_faces`), 2 d n_per_face × 2 energy evaluations per round. A dimension whose
    faces are still not uphill after the last doubling keeps its first extent (and counts in ``box_open_faces``).

    Returns:
        ((lo, hi), info): the box, each (d,) in latent units, and ``info`` with ``box_dims`` (d),
        ``box_doublings`` (the most times one face was moved), ``box_grown_faces`` (faces moved) and
        ``box_open_faces`` (faces towards which U still does not rise: minima may lie beyond them).
    """
    d = land.dim
    rng = np.random.default_rng([int(seed), 7919])
    if bounds is not None:
        lo, hi = check_bounds(bounds, d)
        rising = _rising_faces(land, lo, hi, n_per_face, rng)
        return (lo, hi), {"box_dims": d, "box_doublings": 0, "box_grown_faces": 0,
                          "box_open_faces": int((~rising).sum()), "box_source": "bounds"}
    lo, hi = scale_box(land)
    centre = 0.5 * (lo + hi)
    moved = np.zeros(2 * d, dtype=np.int64)
    rising = _rising_faces(land, lo, hi, n_per_face, rng)
    for _ in range(max_doublings):
        if rising.all():
            break
        # a dimension with an open face grows on both sides: U falling one way says this box is too small for the
        # landscape, and a basin beyond the other face is no less likely than one beyond this face
        open_dim = ~(rising[0::2] & rising[1::2])
        lo = np.where(open_dim, centre - 2.0 * (centre - lo), lo)
        hi = np.where(open_dim, centre + 2.0 * (hi - centre), hi)
        moved += np.repeat(open_dim, 2)
        rising = _rising_faces(land, lo, hi, n_per_face, rng)
    still_open = ~(rising[0::2] & rising[1::2])
    if still_open.any():
        # growing never reached an uphill face in these dimensions (U unbounded below, or falling further than
        # 2^max_doublings × 3 σ_z): starts spread over the huge box would only run away; keep the first box there
        lo0, hi0 = scale_box(land)
        lo, hi = np.where(still_open, lo0, lo), np.where(still_open, hi0, hi)
        moved[np.repeat(still_open, 2)] = 0
    return (lo, hi), {"box_dims": d, "box_doublings": int(moved.max(initial=0)),
                      "box_grown_faces": int((moved > 0).sum()), "box_open_faces": int((~rising).sum()),
                      "box_source": "grown" if moved.any() else "scales"}
