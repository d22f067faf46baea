"""Rate networks: minima as states with log weights, transition states as edges with log fluxes.

A network in detailed balance is fixed by one number per minimum and one per transition state:

- the **weight** Z_i of minimum i (its partition function, so that the stationary probability is π_i ∝ Z_i), and
- the **flux** J_e of transition state e between minima i and j, J_e = Z_i k_ij = Z_j k_ji,

so that the rate of jumps i → j is k_ij = Σ_{e: i–j} J_e / Z_i (parallel transition states add). Storing log Z and
log J keeps detailed balance exact by construction and keeps rates between 10⁻³⁰⁰ and 1 representable.

Two conventions (T: temperature, energies in nats at T = 1):

- ``dynamics="harmonic"``: harmonic transition-state theory as PATHSAMPLE, PyGT and pele compute it from
  ``min.data``/``ts.data`` (log_vib S = log of the product of the positive Hessian eigenvalues, point-group order o):
  k_ij = o_i / (2π o_e) · exp(−(E_e − E_i)/T + (S_i − S_e)/2), i.e. log Z_i = −E_i/T − S_i/2 − log o_i and
  log J_e = −E_e/T − S_e/2 − log o_e − log 2π.
- ``dynamics="langevin"``: overdamped Langevin dz = −∇U dt + √(2T) dW (mobility 1). Kramers–Langer: k_ij =
  |λ_e| / 2π · sqrt(det H_i / |det H_e|) · exp(−(E_e − E_i)/T), with λ_e the saddle's negative eigenvalue; so
  log Z_i = −E_i/T + (n_i/2) log 2πT − ½ Σ log λ_i (the harmonic basin integral) and
  log J_e = −E_e/T + (n_e/2) log 2πT + log(|λ_e|/2π) − ½ log|det H_e|.
  Eigenvalues within ``flat_tol`` of zero are flat directions and left out of both (they are assumed shared).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from energyscope.errors import BadArgumentError

LOG_2PI = float(np.log(2 * np.pi))


class KineticsError(BadArgumentError):
    """The network cannot give the kinetics asked for (e.g. harmonic rates at saddles that sit on kinks)."""


@dataclass
class RateNetwork:
    """Minima and transition states as log weights and log fluxes (see the module docstring).

    Attributes:
        log_weight: (K,) log Z_i (unnormalised).
        pairs: (E, 2) the two minima (0-based) each transition state joins; never a self-loop.
        log_flux: (E,) log J_e.
        log_frequency: (E,) log ν_e, the attempt frequency that turns a free-energy barrier into a rate,
            k_ij = ν_e exp(−(F_e − F_i)/T): |λ_e|/2π for Langevin (λ_e: the saddle's negative eigenvalue), 1/2π for
            harmonic TST (PATHSAMPLE's convention); the free-energy graph uses F_e = −T log(J_e/ν_e).
        notes: what was left out or assumed, one sentence each.
    """

    log_weight: np.ndarray
    pairs: np.ndarray
    log_flux: np.ndarray
    log_frequency: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log_weight = np.asarray(self.log_weight, dtype=float).ravel()
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.log_flux = np.asarray(self.log_flux, dtype=float).ravel()
        self.log_frequency = np.full(len(self.log_flux), -LOG_2PI) if self.log_frequency is None else \
            np.asarray(self.log_frequency, dtype=float).ravel()
        if not (len(self.pairs) == len(self.log_flux) == len(self.log_frequency)):
            raise BadArgumentError(f"{len(self.pairs)} transition-state pairs but {len(self.log_flux)} fluxes")
        self.pairs = _check_pairs(self.pairs, len(self.log_weight))
        if (self.pairs[:, 0] == self.pairs[:, 1]).any():
            raise BadArgumentError("a transition state joins a minimum to itself; leave self-loops out of a RateNetwork")
        for name in ("log_weight", "log_flux", "log_frequency"):
            v = getattr(self, name)
            if not np.isfinite(v).all():
                k = int(np.nonzero(~np.isfinite(v))[0][0])
                raise BadArgumentError(f"{name}[{k}] is {v[k]!r}; weights, fluxes and frequencies must be finite "
                                       "(an energy, log_vib or eigenvalue that is not finite?)")

    @property
    def n_minima(self) -> int:
        return len(self.log_weight)

    def log_rate_matrix(self, log_flux: np.ndarray | None = None) -> np.ndarray:
        """(K, K) log k_ij (``-inf`` where no transition state joins i and j; parallel ones summed)."""
        lf = self.log_flux if log_flux is None else np.asarray(log_flux, dtype=float)
        K = self.n_minima
        L = np.full((K, K), -np.inf)
        for (i, j), f in zip(self.pairs, lf):
            L[i, j] = np.logaddexp(L[i, j], f - self.log_weight[i])
            L[j, i] = np.logaddexp(L[j, i], f - self.log_weight[j])
        return L


def _check_pairs(pairs: np.ndarray, K: int) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    bad = (pairs < 0) | (pairs >= K)
    if bad.any():
        e = int(np.nonzero(bad.any(axis=1))[0][0])
        raise BadArgumentError(f"transition state {e} joins minima {tuple(pairs[e])}, but there are {K} minima")
    return pairs


def harmonic_network(energy, log_vib, order, ts_pairs, ts_energy, ts_log_vib, ts_order,
                     temperature: float) -> RateNetwork:
    """The PATHSAMPLE / PyGT harmonic-TST network (see the module docstring).

    Args:
        energy, log_vib, order: (K,) minima energies (nats), log products of positive Hessian eigenvalues, point-group
            orders.
        ts_pairs: (E, 2) 0-based minima of each transition state; ts_energy, ts_log_vib, ts_order: (E,).
        temperature: T (kT, in the energies' unit).
    """
    T = float(temperature)
    energy, log_vib = np.asarray(energy, dtype=float), np.asarray(log_vib, dtype=float)
    order = np.asarray(order, dtype=float)
    for name, o in (("minima", order), ("transition states", np.asarray(ts_order, dtype=float))):
        if not (o >= 1).all():
            raise BadArgumentError(f"point-group orders of the {name} must be >= 1, got {o[~(o >= 1)][0]!r}")
    pairs = _check_pairs(ts_pairs, len(energy))
    keep = pairs[:, 0] != pairs[:, 1]
    notes = [] if keep.all() else [f"{int((~keep).sum())} transition state(s) joining a minimum to itself left out "
                                   "(they do not move the chain)"]
    log_weight = -energy / T - log_vib / 2 - np.log(order)
    ts_energy, ts_log_vib = np.asarray(ts_energy, dtype=float)[keep], np.asarray(ts_log_vib, dtype=float)[keep]
    log_flux = -ts_energy / T - ts_log_vib / 2 - np.log(np.asarray(ts_order, dtype=float)[keep]) - LOG_2PI
    return RateNetwork(log_weight, pairs[keep], log_flux, None, notes)


def _stiff(ev: np.ndarray, flat_tol: float) -> np.ndarray:
    return ev[np.abs(ev) > flat_tol]


def langevin_weights(eigenvalues: np.ndarray, energy: np.ndarray, temperature: float,
                     flat_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic basin weights log Z_i of overdamped Langevin at T, and the number of stiff directions of each.

    Args:
        eigenvalues: (K, d) Hessian eigenvalues at the minima (nats per latent unit²).
        energy: (K,) energies, nats.
    Raises:
        KineticsError: a minimum on a kink (infinite eigenvalues: its basin is not harmonic) or with a negative one.
    """
    T = float(temperature)
    ev = np.asarray(eigenvalues, dtype=float)
    if ev.ndim != 2 or ev.shape[0] != len(energy) or ev.shape[1] == 0:
        raise KineticsError("Langevin rates need each minimum's Hessian eigenvalues; this network has none "
                            "(a PATHSAMPLE network: use dynamics='harmonic')")
    sharp = ~np.isfinite(ev).all(axis=1)
    if sharp.any():
        raise KineticsError(f"{int(sharp.sum())} of {len(ev)} minima sit on kinks of U (ReLU-family energy; their "
                            "Hessian has infinite eigenvalues), so harmonic basin weights do not exist there; "
                            "estimate crossing times by simulation (energyscope.kinetics.first_passage_times)")
    log_z, n = np.empty(len(ev)), np.empty(len(ev), dtype=np.int64)
    for k, row in enumerate(ev):
        st = _stiff(row, flat_tol)
        if (st < 0).any():
            raise KineticsError(f"minimum {k} has a negative Hessian eigenvalue {st.min():.3g}; it is not a minimum")
        n[k] = len(st)
        log_z[k] = -energy[k] / T + len(st) / 2 * np.log(2 * np.pi * T) - 0.5 * np.log(st).sum()
    return log_z, n


def langevin_network(minima_eigenvalues, minima_energy, ts_pairs, ts_energy, ts_eigenvalues, temperature: float,
                     flat_tol: float = 0.0) -> RateNetwork:
    """The overdamped-Langevin Kramers–Langer network (see the module docstring).

    Args:
        minima_eigenvalues: (K, d); minima_energy: (K,).
        ts_pairs: (E, 2); ts_energy: (E,); ts_eigenvalues: (E, d), ascending, exactly one negative.
        temperature: T; flat_tol: eigenvalues within ± this are flat (left out).
    """
    T = float(temperature)
    energy = np.asarray(minima_energy, dtype=float)
    log_weight, n_min = langevin_weights(minima_eigenvalues, energy, T, flat_tol)
    pairs = _check_pairs(ts_pairs, len(energy))
    ts_ev = np.asarray(ts_eigenvalues, dtype=float).reshape(len(pairs), np.shape(minima_eigenvalues)[1])
    keep = pairs[:, 0] != pairs[:, 1]
    notes = [] if keep.all() else [f"{int((~keep).sum())} transition state(s) joining a minimum to itself left out "
                                   "(they do not move the chain)"]
    sharp = keep & ~np.isfinite(ts_ev).all(axis=1)
    if sharp.any():
        raise KineticsError(f"{int(sharp.sum())} of {int(keep.sum())} transition states sit on kinks of U (ReLU-"
                            "family energy; infinite Hessian eigenvalues), where Kramers–Langer rates do not exist; "
                            "estimate crossing times by simulation (energyscope.kinetics.first_passage_times)")
    log_flux, log_freq, mismatched = [], [], 0
    for e in np.nonzero(keep)[0]:
        st = _stiff(ts_ev[e], flat_tol)
        neg = st[st < 0]
        if len(neg) != 1:
            raise KineticsError(f"transition state {e} between minima {tuple(pairs[e])} has {len(neg)} negative "
                                "Hessian eigenvalues; a Kramers–Langer rate needs exactly one")
        i, j = pairs[e]
        mismatched += int(len(st) != n_min[i] or len(st) != n_min[j])
        log_freq.append(np.log(-neg[0]) - LOG_2PI)
        log_flux.append(-ts_energy[e] / T + len(st) / 2 * np.log(2 * np.pi * T) + np.log(-neg[0]) - LOG_2PI
                        - 0.5 * np.log(np.abs(st)).sum())
    if mismatched:
        notes.append(f"{mismatched} transition state(s) have a different number of flat directions than their minima; "
                     "their harmonic rates carry factors of (2πT)^(1/2) per unmatched direction")
    return RateNetwork(log_weight, pairs[keep], np.array(log_flux), np.array(log_freq), notes)


__all__ = ["RateNetwork", "KineticsError", "harmonic_network", "langevin_network", "langevin_weights", "LOG_2PI"]
