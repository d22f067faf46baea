"""How much probability each basin holds, three ways side by side (DESIGN §4.7).

A *basin* is the set of latents that steepest descent (a quench) carries to one minimum. For a set of minima
(``Minima``), every sample is quenched in batches and assigned to the minimum it ends at; samples that end at a minimum
not in the set are counted as ``OTHER`` (and the new minima are listed), samples that do not converge (or meet
non-finite values) as ``UNRESOLVED``. Nothing is dropped: the masses of all basins plus ``other`` plus ``unresolved``
add up to one.

The three masses:

(a) **equilibrium** prior mass of p(z) ∝ exp(-U(z)).
    With ``base_prior="standard_normal"`` (U = E + ||z||²/(2σ²)) by self-normalised importance sampling from the base
    N(0, σ² I) with log-weights -(U(z) - ||z||²/(2σ²)) (the tilt); the Kish effective sample size and a delta-method
    standard error per basin are reported. Otherwise by Metropolis-adjusted Langevin (MALA): several chains started at
    the minima, step size tuned during burn-in to acceptance ≈ 0.574, plus mode-jump moves (translations
    z → z + m_j − m_i between the known minima, which keep detailed balance) so that chains cross high barriers;
    the standard error comes from the spread between chains.
(b) **sampler** mass: what the model's own short-run sampler produces: Langevin from the base,
    z ← z − (s²/2) ∇U(z) + noise · s · ε (Pang et al. 2020), with ``land.sampler``'s ``steps``/``step_size``/``noise``
    (defaults 60 / 0.4 / on, the settings of Pang et al., used and reported when the checkpoint does not have them).
(c) **data** mass: the fraction of reference latents (e.g. encoder means) in each basin.

Masses are available per minimum (the leaves) and aggregated over any partition of the minima, e.g.
``tree.basins_at(E)`` of the disconnectivity graph. No basins are merged by default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from energyscope.errors import BadArgumentError, warn as warn_user
from energyscope._deadline import expired
from energyscope._geometry import cluster_points
from energyscope._tensor import jsonable, to_numpy
from energyscope.sampling import SAMPLER_DEFAULTS, _progress, sampler_settings, short_run_samples  # noqa: F401 (public here too)
from energyscope.landscape import Landscape, LandscapeError
from energyscope.search.book import quench_to_minima
from energyscope.search.minima import Minima

OTHER = -1        #: the sample quenched to a minimum that is not in the set
UNRESOLVED = -2   #: the sample's quench did not converge or met non-finite values



# ---------------------------------------------------------------------------------------------- assignment
@dataclass
class Assignment:
    """Where each sample's quench ended.

    Attributes:
        basin: (N,) int, index of the minimum reached, or ``OTHER`` (-1) / ``UNRESOLVED`` (-2).
        z_end: (N, d) quench end points (latent units).
        energy_end: (N,) U at the end points, nats (NaN where non-finite).
        new_minima: (M, d) distinct minima reached that are not in the set (one row per ``OTHER`` cluster).
        new_energy: (M,) their energies, nats.
        new_counts: (M,) how many samples reached each.
        tol: the distance (latent units) within which an end point counts as a given minimum.
    """

    basin: np.ndarray
    z_end: np.ndarray
    energy_end: np.ndarray
    new_minima: np.ndarray
    new_energy: np.ndarray
    new_counts: np.ndarray
    tol: float

    @property
    def n_other(self) -> int:
        return int((self.basin == OTHER).sum())

    @property
    def n_unresolved(self) -> int:
        return int((self.basin == UNRESOLVED).sum())


_cluster = cluster_points  # labels (N,) of the points closer than tol


def assign_basins(land: Landscape, minima: Minima, z: Any, tol: float | None = None, batch_size: int = 4096,
                  max_iter: int = 5000, progress: bool = True, desc: str = "quench") -> Assignment:
    """Quench every row of z (N, d) in batches and assign it to the minimum it reaches.

    Args:
        land: the landscape.
        minima: the known minima; ``minima.assign`` decides which one an end point is.
        z: (N, d) starting latents.
        tol: match distance in latent units (default ``minima.dedup_tol``, the search's own dedup tolerance).
        batch_size: rows quenched together.
        max_iter: iteration cap per quench.
        progress: show a tqdm bar over batches.

    Returns:
        An :class:`Assignment`. End points that are converged but match no minimum are ``OTHER`` and are clustered
        (with ``tol``) into ``new_minima``; unconverged or non-finite rows are ``UNRESOLVED`` unless they already sit
        on a known minimum.
    """
    z = np.asarray(to_numpy(z), dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != land.dim:
        raise LandscapeError(f"latents to assign must have shape (N, {land.dim}), got {z.shape}")
    if z.shape[1] != minima.dim:
        raise LandscapeError(f"minima have dimension {minima.dim} but the landscape has {land.dim}")
    tol = float(minima.dedup_tol if tol is None else tol)
    n = len(z)
    basin = np.full(n, UNRESOLVED, dtype=int)
    z_end = np.full_like(z, np.nan)
    e_end = np.full(n, np.nan)
    starts = range(0, n, batch_size)
    for s in _progress(starts, progress and n > batch_size, desc, total=len(starts)):
        sl = slice(s, min(n, s + batch_size))
        q = quench_to_minima(land, z[sl], minima, add_new=False, match_unconverged=True, tol=tol, max_iter=max_iter)
        idx, fin = q.minimum, q.finite
        b = np.where(q.converged, np.where(idx >= 0, idx, OTHER), UNRESOLVED)
        b = np.where(idx >= 0, idx, b)  # an unconverged row already on a known minimum counts there
        b = np.where(fin, b, UNRESOLVED)
        basin[sl], z_end[sl], e_end[sl] = b, q.z, np.where(fin, q.energy, np.nan)
    other = np.flatnonzero(basin == OTHER)
    if len(other):
        lab = _cluster(z_end[other], tol)
        m = lab.max() + 1
        new_z = np.stack([z_end[other][lab == c].mean(0) for c in range(m)])
        new_e = np.array([np.nanmin(e_end[other][lab == c]) for c in range(m)])
        new_n = np.bincount(lab, minlength=m)
        order = np.argsort(new_e)
        new_z, new_e, new_n = new_z[order], new_e[order], new_n[order]
    else:
        new_z, new_e, new_n = np.zeros((0, z.shape[1])), np.zeros(0), np.zeros(0, dtype=int)
    return Assignment(basin, z_end, e_end, new_z, new_e, new_n, tol)


# ---------------------------------------------------------------------------------------------- estimates
def _estimate(basin: np.ndarray, k: int, log_weight: np.ndarray | None, chain: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray, float, float, float, float, float]:
    """Masses (k,), standard errors (k,), other, other_se, unresolved, unresolved_se and ESS from per-sample data.

    Columns k and k+1 of the internal table are ``OTHER`` and ``UNRESOLVED``.
    """
    n = len(basin)
    col = np.where(basin >= 0, basin, np.where(basin == OTHER, k, k + 1))
    onehot = np.zeros((n, k + 2))
    onehot[np.arange(n), col] = 1.0
    if n == 0:
        z = np.zeros(k + 2)
        return z[:k], z[:k], 0.0, 0.0, 0.0, 0.0, 0.0
    if log_weight is not None:
        lw = np.where(np.isfinite(log_weight), log_weight, -np.inf)
        if not np.isfinite(lw).any():
            raise BadArgumentError("every importance weight is zero or non-finite")
        w = np.exp(lw - lw.max())
        sw = w.sum()
        mass = w @ onehot / sw
        se = np.sqrt((w[:, None] ** 2 * (onehot - mass) ** 2).sum(0)) / sw
        ess = float(sw**2 / (w**2).sum())
    elif chain is not None and len(np.unique(chain)) >= 2:
        chains = np.unique(chain)
        per = np.stack([onehot[chain == c].mean(0) for c in chains])
        mass = onehot.mean(0)
        se = per.std(0, ddof=1) / np.sqrt(len(chains))
        top = int(np.argmax(mass))
        ess = float(mass[top] * (1 - mass[top]) / se[top] ** 2) if se[top] > 0 else float(n)
    else:
        mass = onehot.mean(0)
        se = np.sqrt(mass * (1 - mass) / n)
        ess = float(n)
    return mass[:k], se[:k], float(mass[k]), float(se[k]), float(mass[k + 1]), float(se[k + 1]), ess


@dataclass
class MassEstimate:
    """One way of measuring basin masses, with the per-sample record it came from.

    Attributes:
        method: ``"importance"``, ``"mala"``, ``"sampler"`` or ``"data"``.
        mass: (K,) probability per basin (fractions; with ``other`` and ``unresolved`` they sum to one).
        se: (K,) Monte-Carlo standard error per basin.
        other, other_se: mass that quenched to minima not in the set.
        unresolved, unresolved_se: mass whose quench did not converge.
        ess: effective sample size (Kish's for importance sampling; for MALA the size implied by the largest basin's
            between-chain standard error; the sample count otherwise).
        n_samples: samples drawn.
        basin: (N,) per-sample basin (``OTHER``/``UNRESOLVED`` negative), in the indexing of ``groups`` of the owner.
        log_weight: (N,) importance log-weights, or None.
        chain: (N,) chain index (MALA), or None.
        z: (N, d) the samples themselves (latent units), or None when not kept.
        info: settings and diagnostics (step sizes, acceptance, defaults used, new minima found, ...).
    """

    method: str
    mass: np.ndarray
    se: np.ndarray
    other: float
    other_se: float
    unresolved: float
    unresolved_se: float
    ess: float
    n_samples: int
    basin: np.ndarray
    log_weight: np.ndarray | None = None
    chain: np.ndarray | None = None
    z: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @classmethod
    def from_samples(cls, method: str, basin: np.ndarray, k: int, log_weight: np.ndarray | None = None,
                     chain: np.ndarray | None = None, z: np.ndarray | None = None, info: dict | None = None
                     ) -> "MassEstimate":
        """Estimate masses of ``k`` basins from per-sample assignments (and weights or chain ids)."""
        basin = np.asarray(basin, dtype=int)
        mass, se, oth, oth_se, unr, unr_se, ess = _estimate(basin, k, log_weight, chain)
        return cls(method, mass, se, oth, oth_se, unr, unr_se, ess, int(len(basin)), basin,
                   None if log_weight is None else np.asarray(log_weight, dtype=float),
                   None if chain is None else np.asarray(chain, dtype=int), z, dict(info or {}))

    def regroup(self, leaf_to_group: np.ndarray, n_groups: int) -> "MassEstimate":
        """The same samples with basins relabelled by ``leaf_to_group`` (K,) into ``n_groups`` groups."""
        b = np.where(self.basin >= 0, leaf_to_group[np.maximum(self.basin, 0)], self.basin)
        return MassEstimate.from_samples(self.method, b, n_groups, self.log_weight, self.chain, self.z, self.info)

    def to_dict(self) -> dict:
        """JSON-able scalars and lists; the per-sample arrays stay numpy arrays (persist them as arrays)."""
        return {"method": self.method, "mass": self.mass.tolist(), "se": self.se.tolist(),
                "other": self.other, "other_se": self.other_se, "unresolved": self.unresolved,
                "unresolved_se": self.unresolved_se, "ess": self.ess, "n_samples": self.n_samples,
                "basin": self.basin, "log_weight": self.log_weight, "chain": self.chain, "z": self.z,
                "info": jsonable(self.info)}

    @classmethod
    def from_dict(cls, d: dict) -> "MassEstimate":
        arr = lambda v, dt=float: None if v is None else np.asarray(v, dtype=dt)  # noqa: E731
        return cls(d["method"], arr(d["mass"]), arr(d["se"]), float(d["other"]), float(d["other_se"]),
                   float(d["unresolved"]), float(d["unresolved_se"]), float(d["ess"]), int(d["n_samples"]),
                   arr(d["basin"], int), arr(d.get("log_weight")), arr(d.get("chain"), int), arr(d.get("z")),
                   dict(d.get("info") or {}))


def _new_minima_info(a: Assignment) -> dict:
    return {"n_other": a.n_other, "n_unresolved": a.n_unresolved, "new_minima": a.new_minima.tolist(),
            "new_minima_energy": a.new_energy.tolist(), "new_minima_counts": a.new_counts.tolist()}


def _importance_log_weights(land: Landscape, z: np.ndarray) -> np.ndarray:
    """log w = -(U(z) - ||z||²/(2σ²)) for base samples z (N, d): the tilt of p over the base."""
    u = to_numpy(land.energy(z))
    return -(u - 0.5 * (z * z).sum(1) / land.base_sigma**2)


def importance_ess(land: Landscape, n: int = 8192, seed: int = 0) -> float:
    """Kish effective sample size (Σw)²/Σw² of the importance weights of n base samples (no quenching needed).

    Uses the same samples as :func:`importance_mass` with the same seed.
    """
    if land.base_prior != "standard_normal":
        raise LandscapeError("importance sampling from the base needs base_prior='standard_normal'")
    log_w = _importance_log_weights(land, land.base_samples(n, seed=seed))
    log_w = log_w[np.isfinite(log_w)]
    if not len(log_w):
        return 0.0
    w = np.exp(log_w - log_w.max())
    return float(w.sum() ** 2 / (w * w).sum())


def importance_mass(land: Landscape, minima: Minima, n: int = 8192, seed: int = 0, keep_z: bool = True,
                    progress: bool = True, **assign_kw) -> MassEstimate:
    """Equilibrium basin masses by self-normalised importance sampling from the base N(0, σ² I).

    Requires ``land.base_prior == "standard_normal"``: p(z) ∝ exp(-U(z)) = exp(-E(z)) N(z; 0, σ² I) up to a constant,
    so the weight of a base sample is exp(-(U(z) - ||z||²/(2σ²))). Samples with a non-finite weight get weight zero
    and are counted in ``info["n_nonfinite"]``.
    """
    if land.base_prior != "standard_normal":
        raise LandscapeError("importance sampling from the base needs base_prior='standard_normal'; use mala_mass")
    z = land.base_samples(n, seed=seed)
    log_w = _importance_log_weights(land, z)
    a = assign_basins(land, minima, z, progress=progress, desc="quench prior samples", **assign_kw)
    info = {"seed": seed, "n_nonfinite": int((~np.isfinite(log_w)).sum()), **_new_minima_info(a)}
    return MassEstimate.from_samples("importance", a.basin, len(minima), log_weight=log_w,
                                     z=z if keep_z else None, info=info)


def _mala_scale(minima: Minima, land: Landscape) -> float:
    ev = np.asarray(minima.hessian_eigenvalues, dtype=float)
    ev = ev[np.isfinite(ev) & (ev > 0)]
    if len(ev):
        return float(1.0 / np.sqrt(ev.max()))
    return 0.1 * land.scales().length


def mala_samples(land: Landscape, minima: Minima, n_chains: int = 32, n_samples: int = 256, thin: int = 4,
                 burn_in: int = 500, jump_prob: float = 0.1, target_accept: float = 0.574, seed: int = 0,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Metropolis-adjusted Langevin samples of p ∝ exp(-U), all chains advanced together.

    Chains start at the minima (cycled). Proposal z' = z - (h²/2)∇U(z) + h ξ with a per-chain step h adapted during
    ``burn_in`` (Robbins–Monro on log h towards ``target_accept``) and then frozen. With probability ``jump_prob`` a
    step is a mode jump instead: pick a minimum j uniformly, translate z by m_j − m_i (m_i the minimum nearest z) and
    accept with min(1, exp(U(z) − U(z'))) if m_j is nearest the proposal (a symmetric, volume-preserving involution,
    so detailed balance holds).

    Returns:
        (samples (n_chains · n_samples, d), chain index per sample, info with step sizes and acceptance rates).
    """
    if n_chains < 2:
        raise BadArgumentError(f"MALA needs at least 2 chains for a standard error, got n_chains={n_chains}")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    dev, dt = land.device, land.dtype
    mins = land.as_tensor(minima.z)
    k = mins.shape[0]
    tree = cKDTree(minima.z)
    z = mins[torch.arange(n_chains) % k].clone()
    e, g = land.energy_and_grad(z)
    h = torch.full((n_chains,), _mala_scale(minima, land) * land.dim ** (-1 / 6), device=dev, dtype=dt)
    randn = lambda *s: torch.randn(*s, generator=gen, dtype=dt).to(dev)  # noqa: E731
    rand = lambda *s: torch.rand(*s, generator=gen, dtype=dt).to(dev)  # noqa: E731
    out, chain = [], []
    n_acc = torch.zeros(n_chains, device=dev, dtype=dt)
    n_prop = torch.zeros(n_chains, device=dev, dtype=dt)
    n_jump_acc = n_jump = 0
    total = burn_in + n_samples * thin
    time_limited = False
    for t in _progress(range(total), progress, "MALA", total=total):
        if expired():  # the stage's time limit: keep what the chains have (one state each, at least)
            time_limited = True
            if not out:
                out.append(to_numpy(z).copy())
                chain.append(np.arange(n_chains))
            break
        jump = (rand(n_chains) < jump_prob) if k >= 2 else torch.zeros(n_chains, dtype=torch.bool, device=dev)
        # Langevin proposal (computed for all rows; used where not jumping)
        zp = z - 0.5 * h[:, None] ** 2 * g + h[:, None] * randn(n_chains, land.dim)
        # mode-jump proposal
        if bool(jump.any()):
            i_near = torch.as_tensor(tree.query(to_numpy(z))[1], device=dev)
            j_new = torch.randint(0, k, (n_chains,), generator=gen).to(dev)
            zj = z + mins[j_new] - mins[i_near]
            zp = torch.where(jump[:, None], zj, zp)
        ep, gp = land.energy_and_grad(zp)
        fwd = ((zp - z + 0.5 * h[:, None] ** 2 * g) ** 2).sum(1) / (2 * h**2)
        bwd = ((z - zp + 0.5 * h[:, None] ** 2 * gp) ** 2).sum(1) / (2 * h**2)
        log_a = -(ep - e) - bwd + fwd
        if bool(jump.any()):
            ok_back = torch.as_tensor(tree.query(to_numpy(zp))[1], device=dev) == j_new
            log_a = torch.where(jump, torch.where(ok_back, -(ep - e), torch.full_like(e, -np.inf)), log_a)
        log_a = torch.where(torch.isfinite(log_a), log_a, torch.full_like(log_a, -np.inf))
        acc = torch.log(rand(n_chains)) < log_a
        z = torch.where(acc[:, None], zp, z)
        e = torch.where(acc, ep, e)
        g = torch.where(acc[:, None], gp, g)
        a_prob = torch.exp(torch.clamp(log_a, max=0.0))
        lang = ~jump
        if t < burn_in:
            rate = 1.0 / (t + 10) ** 0.6
            h = torch.where(lang, h * torch.exp(rate * (a_prob - target_accept)), h)
        else:
            n_acc += (acc & lang).to(dt)
            n_prop += lang.to(dt)
            n_jump += int(jump.sum())
            n_jump_acc += int((acc & jump).sum())
            if (t - burn_in + 1) % thin == 0:
                out.append(to_numpy(z).copy())
                chain.append(np.arange(n_chains))
    info = {"seed": seed, "n_chains": n_chains, "n_samples_per_chain": n_samples, "thin": thin, "burn_in": burn_in,
            "jump_prob": jump_prob, "step_size": to_numpy(h).tolist(),
            "acceptance": to_numpy(n_acc / n_prop.clamp_min(1)).tolist(),
            "jump_acceptance": n_jump_acc / max(n_jump, 1), "time_limited": time_limited}
    return np.concatenate(out), np.concatenate(chain), info


def mala_mass(land: Landscape, minima: Minima, n_chains: int = 32, n_samples: int = 256, thin: int = 4,
              burn_in: int = 500, jump_prob: float = 0.1, seed: int = 0, keep_z: bool = True,
              progress: bool = True, **assign_kw) -> MassEstimate:
    """Equilibrium basin masses from :func:`mala_samples`, each sample quenched; SE from the spread between chains."""
    z, chain, info = mala_samples(land, minima, n_chains, n_samples, thin, burn_in, jump_prob, seed=seed,
                                  progress=progress)
    a = assign_basins(land, minima, z, progress=progress, desc="quench MALA samples", **assign_kw)
    info.update(_new_minima_info(a))
    return MassEstimate.from_samples("mala", a.basin, len(minima), chain=chain, z=z if keep_z else None, info=info)


def sampler_mass(land: Landscape, minima: Minima, n: int = 4096, sampler: dict | None = None, seed: int = 0,
                 keep_z: bool = True, progress: bool = True, **assign_kw) -> MassEstimate:
    """Basin masses of the model's own short-run sampler (:func:`short_run_samples`), each sample quenched."""
    z, info = short_run_samples(land, n, sampler, seed, progress)
    a = assign_basins(land, minima, z, progress=progress, desc="quench sampler output", **assign_kw)
    info.update(_new_minima_info(a))
    return MassEstimate.from_samples("sampler", a.basin, len(minima), z=z if keep_z else None, info=info)


def data_mass(land: Landscape, minima: Minima, reference: Any = None, far_factor: float = 1.5,
              progress: bool = True, **assign_kw) -> MassEstimate:
    """Fraction of reference latents (default ``land.reference``) in each basin.

    ``info["far"]`` lists the reference latents farther than ``far_factor`` × the data's radius (the root-mean-square
    distance of the reference latents from their mean, √trace(cov)) from every minimum; ``info["nearest_distance"]``
    holds each one's distance to the nearest minimum (latent units).
    """
    ref = land.reference if reference is None else np.asarray(to_numpy(reference), dtype=np.float64)
    if ref is None:
        raise LandscapeError("data mass needs reference latents (land.reference or reference=)")
    a = assign_basins(land, minima, ref, progress=progress, desc="quench reference latents", **assign_kw)
    dist = cKDTree(minima.z).query(ref)[0] if len(minima) else np.full(len(ref), np.inf)
    radius = float(np.sqrt(np.sum(np.var(ref, axis=0)))) if len(ref) > 1 else 1.0
    far = np.flatnonzero(dist > far_factor * radius)
    info = {"far_factor": far_factor, "radius": radius, "far": far.tolist(), "n_far": int(len(far)),
            "nearest_distance": dist, **_new_minima_info(a)}
    return MassEstimate.from_samples("data", a.basin, len(minima), z=ref, info=info)


# ---------------------------------------------------------------------------------------------- side by side
def partition_map(partition: Sequence[Sequence[int]], k: int) -> tuple[np.ndarray, list[list[int]]]:
    """Leaf → group index (K,) for a partition of the K minima (e.g. ``tree.basins_at(E)``).

    Minima the partition does not mention become singleton groups at the end; an index out of range or listed twice
    is an error.
    """
    groups = [sorted(int(i) for i in g) for g in partition]
    leaf = np.full(k, -1, dtype=int)
    for gi, g in enumerate(groups):
        for i in g:
            if not 0 <= i < k:
                raise BadArgumentError(f"partition mentions minimum {i}, but there are only {k} minima")
            if leaf[i] >= 0:
                raise BadArgumentError(f"partition lists minimum {i} in more than one group")
            leaf[i] = gi
    for i in np.flatnonzero(leaf < 0):
        leaf[i] = len(groups)
        groups.append([int(i)])
    return leaf, groups


@dataclass
class MassFlags:
    """Where the three masses disagree (per group; bool arrays of length G).

    prior_hole: equilibrium mass ≥ ``hole_ratio`` × data mass, at least ``min_mass``, and significantly above it.
    unsupported: no reference latent in the basin.
    disagree: equilibrium and sampler mass differ by at least ``min_diff`` and by more than ``n_se`` combined SEs.
    data_far: number of reference latents farther than ``far_factor`` data radii from every minimum.
    prior_miss: the reverse of a hole, data the prior misses: data mass ≥ ``hole_ratio`` × equilibrium mass, at
        least ``min_mass``, and significantly above it.
    """

    prior_hole: np.ndarray
    unsupported: np.ndarray
    disagree: np.ndarray
    data_far: int
    thresholds: dict
    prior_miss: np.ndarray | None = None


def _flags(eq: MassEstimate | None, smp: MassEstimate | None, dat: MassEstimate | None, g: int,
           hole_ratio: float, min_mass: float, min_diff: float, n_se: float) -> MassFlags:
    no = np.zeros(g, dtype=bool)
    hole, unsup, dis, miss = no.copy(), no.copy(), no.copy(), no.copy()
    if dat is not None:
        counts = np.bincount(dat.basin[dat.basin >= 0], minlength=g)
        unsup = counts == 0
        if eq is not None:
            sep = np.sqrt(eq.se**2 + dat.se**2)
            hole = (eq.mass >= hole_ratio * dat.mass) & (eq.mass >= min_mass) & (eq.mass - dat.mass > n_se * sep)
            miss = (dat.mass >= hole_ratio * eq.mass) & (dat.mass >= min_mass) & (dat.mass - eq.mass > n_se * sep)
    if eq is not None and smp is not None:
        diff = np.abs(eq.mass - smp.mass)
        dis = (diff >= min_diff) & (diff > n_se * np.sqrt(eq.se**2 + smp.se**2))
    data_far = int(dat.info.get("n_far", 0)) if dat is not None else 0
    return MassFlags(hole, unsup, dis, data_far, {"hole_ratio": hole_ratio, "min_mass": min_mass,
                                                  "min_diff": min_diff, "n_se": n_se}, miss)


@dataclass
class BasinMasses:
    """Equilibrium, sampler and data mass per basin, side by side, with flags.

    Attributes:
        groups: the basins, each a list of minima indices (leaves: ``[[0], [1], ...]``).
        energy: (G,) lowest minimum energy in each group, nats.
        equilibrium, sampler, data: :class:`MassEstimate` or None when not computed.
        flags: :class:`MassFlags`.
        n_leaves: K, the number of minima the groups partition.
    """

    groups: list[list[int]]
    energy: np.ndarray
    equilibrium: MassEstimate | None
    sampler: MassEstimate | None
    data: MassEstimate | None
    flags: MassFlags
    n_leaves: int
    leaf_energy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.groups)

    def aggregate(self, partition: Sequence[Sequence[int]]) -> "BasinMasses":
        """The same samples summed over a partition of the minima (e.g. ``tree.basins_at(E)``); only from leaves."""
        if any(len(g) != 1 for g in self.groups):
            raise BadArgumentError("aggregate works from the leaf-level masses; call it on the leaf result")
        leaf, groups = partition_map(partition, self.n_leaves)
        regroup = lambda m: None if m is None else m.regroup(leaf, len(groups))  # noqa: E731
        le = self.energy if self.leaf_energy is None else self.leaf_energy
        energy = np.array([min(le[i] for i in g) for g in groups])
        eq, smp, dat = regroup(self.equilibrium), regroup(self.sampler), regroup(self.data)
        return BasinMasses(groups, energy, eq, smp, dat, _flags(eq, smp, dat, len(groups), **self.flags.thresholds),
                           self.n_leaves, le)

    def table(self) -> list[dict]:
        """One row per basin: members, energy, each mass with its SE, data count and flags."""
        rows = []
        for gi, g in enumerate(self.groups):
            r = {"basin": gi, "minima": list(g), "energy": float(self.energy[gi])}
            for name in ("equilibrium", "sampler", "data"):
                m = getattr(self, name)
                r[f"{name}_mass"] = None if m is None else float(m.mass[gi])
                r[f"{name}_se"] = None if m is None else float(m.se[gi])
            r["data_count"] = None if self.data is None else int((self.data.basin == gi).sum())
            r["prior_hole"] = bool(self.flags.prior_hole[gi])
            r["prior_miss"] = bool(self.flags.prior_miss[gi]) if self.flags.prior_miss is not None else False
            r["unsupported"] = bool(self.flags.unsupported[gi]) if self.data is not None else None
            r["disagree"] = bool(self.flags.disagree[gi])
            rows.append(r)
        return rows

    def to_dict(self) -> dict:
        f = self.flags
        return {"groups": self.groups, "energy": self.energy.tolist(), "n_leaves": self.n_leaves,
                "leaf_energy": None if self.leaf_energy is None else self.leaf_energy.tolist(),
                "equilibrium": None if self.equilibrium is None else self.equilibrium.to_dict(),
                "sampler": None if self.sampler is None else self.sampler.to_dict(),
                "data": None if self.data is None else self.data.to_dict(),
                "flags": {"prior_hole": f.prior_hole.tolist(), "unsupported": f.unsupported.tolist(),
                          "disagree": f.disagree.tolist(), "data_far": f.data_far, "thresholds": f.thresholds,
                          "prior_miss": None if f.prior_miss is None else f.prior_miss.tolist()}}

    @classmethod
    def from_dict(cls, d: dict) -> "BasinMasses":
        est = lambda v: None if v is None else MassEstimate.from_dict(v)  # noqa: E731
        f = d["flags"]
        flags = MassFlags(np.asarray(f["prior_hole"], bool), np.asarray(f["unsupported"], bool),
                          np.asarray(f["disagree"], bool), int(f["data_far"]), dict(f["thresholds"]),
                          None if f.get("prior_miss") is None else np.asarray(f["prior_miss"], bool))
        return cls([list(map(int, g)) for g in d["groups"]], np.asarray(d["energy"], float), est(d["equilibrium"]),
                   est(d["sampler"]), est(d["data"]), flags, int(d["n_leaves"]),
                   None if d.get("leaf_energy") is None else np.asarray(d["leaf_energy"], float))


def basin_masses(land: Landscape, minima: Minima, *, method: str = "auto", n_prior: int = 8192,
                 n_sampler: int = 4096, reference: Any = None, sampler: dict | None = None,
                 mala: dict | None = None, partition: Sequence[Sequence[int]] | None = None,
                 which: Sequence[str] | None = None, seed: int = 0, keep_z: bool = True,
                 min_ess: float = 200.0, hole_ratio: float = 3.0, min_mass: float = 0.01, min_diff: float = 0.02,
                 n_se: float = 4.0, progress: bool = True, **assign_kw) -> BasinMasses:
    """Equilibrium, sampler and data mass of every basin, side by side, with flags.

    Args:
        land, minima: the landscape and its minima (basins are the minima's domains of attraction).
        method: equilibrium estimator: ``"importance"`` (needs a standard-normal base), ``"mala"``, or ``"auto"``
            (importance with a standard-normal base, MALA otherwise; importance is also replaced by MALA, with a
            warning, when its effective sample size is below ``min_ess``: the tilt is then too strong for the base to
            be a useful proposal; the importance result is kept in ``info["importance"]``).
        n_prior: importance samples (for MALA pass ``mala={"n_chains": .., "n_samples": .., ...}``).
        n_sampler: short-run sampler chains.
        reference: reference latents (default ``land.reference``); data mass is skipped without any.
        sampler: short-run sampler settings overriding ``land.sampler`` (see :func:`sampler_settings`).
        partition: optionally aggregate over this partition of the minima (e.g. ``tree.basins_at(E)``).
        which: which of the three masses to compute. Default: all three, except the sampler mass when nothing is
            known about the model's sampler (no ``sampler=``, no ``land.sampler`` settings) and there is no
            standard-normal base: the default short-run settings (Pang et al.: Langevin from N(0, I)) only mean
            something for that form, and on other landscapes they would report a sampler the model never had.
        seed: seeds every stochastic step (importance/MALA with ``seed``, sampler with ``seed + 1``).
        min_ess: with method="auto", the importance ESS below which MALA is used instead.
        hole_ratio, min_mass, min_diff, n_se: flag thresholds (see :class:`MassFlags`).
        progress: tqdm bars; ``False`` for quiet.
        assign_kw: passed to :func:`assign_basins` (``tol``, ``batch_size``, ``max_iter``).
    """
    if which is None:
        sampler_known = bool(sampler) or bool(land.sampler) or land.base_prior == "standard_normal"
        which = ("equilibrium", "sampler", "data") if sampler_known else ("equilibrium", "data")
    unknown = set(which) - {"equilibrium", "sampler", "data"}
    if unknown:
        raise BadArgumentError(f"unknown mass kinds {sorted(unknown)}; use 'equilibrium', 'sampler', 'data'")
    if method not in ("auto", "importance", "mala"):
        raise BadArgumentError(f"unknown method {method!r}; use 'auto', 'importance' or 'mala'")
    if len(minima) == 0:
        raise BadArgumentError("no minima: basin masses need at least one minimum")
    auto = method == "auto"
    if auto:
        method = "importance" if land.base_prior == "standard_normal" else "mala"
    eq = smp = dat = None
    if "equilibrium" in which:
        if method == "importance" and auto:
            # the weights alone give the effective sample size: decide before quenching thousands of samples
            ess = importance_ess(land, n_prior, seed=seed)
            if ess < min_ess:
                warn_user(f"importance sampling from the base has effective sample size {ess:.0f} of "
                          f"{n_prior} (< min_ess={min_ess:g}); using MALA for the equilibrium mass")
                eq = mala_mass(land, minima, seed=seed, keep_z=keep_z, progress=progress, **(mala or {}),
                               **assign_kw)
                eq.info["importance"] = {"ess": ess, "n_samples": int(n_prior)}
        if eq is None and method == "importance":
            eq = importance_mass(land, minima, n_prior, seed=seed, keep_z=keep_z, progress=progress, **assign_kw)
        elif eq is None:
            eq = mala_mass(land, minima, seed=seed, keep_z=keep_z, progress=progress, **(mala or {}), **assign_kw)
    if "sampler" in which:
        smp = sampler_mass(land, minima, n_sampler, sampler, seed=seed + 1, keep_z=keep_z, progress=progress,
                           **assign_kw)
    has_ref = reference is not None or land.reference is not None
    if "data" in which and has_ref:
        dat = data_mass(land, minima, reference, progress=progress, **assign_kw)
    k = len(minima)
    thr = dict(hole_ratio=hole_ratio, min_mass=min_mass, min_diff=min_diff, n_se=n_se)
    leaves = BasinMasses([[i] for i in range(k)], np.asarray(minima.energy, float), eq, smp, dat,
                         _flags(eq, smp, dat, k, **thr), k, np.asarray(minima.energy, float))
    return leaves if partition is None else leaves.aggregate(partition)


__all__ = ["OTHER", "UNRESOLVED", "SAMPLER_DEFAULTS", "Assignment", "assign_basins", "MassEstimate", "MassFlags",
           "BasinMasses", "basin_masses", "importance_ess", "importance_mass", "mala_samples", "mala_mass", "sampler_settings",
           "short_run_samples", "sampler_mass", "data_mass", "partition_map"]
