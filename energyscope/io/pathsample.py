"""Transition networks in the PATHSAMPLE / disconnectionDPS text format (``min.data`` and ``ts.data``).

These two files are how the Wales-group tools (PATHSAMPLE, disconnectionDPS, ...) store a kinetic transition network,
one stationary point per line, whitespace-separated:

``min.data`` (line k is minimum k, 1-based)::

    energy  log_vib  point_group_order  Ix  Iy  Iz

``ts.data``::

    energy  log_vib  point_group_order  min1  min2  Ix  Iy  Iz

``log_vib`` is the log of the product of the positive Hessian eigenvalues (the frequency factor PATHSAMPLE uses for
rate constants; for a transition state the one negative eigenvalue is left out), ``point_group_order`` the order of
the point group (1: no symmetry) and ``Ix Iy Iz`` the principal moments of inertia. A latent space has no symmetry and
no inertia, so energyscope writes ``1`` and zeros; ``log_vib`` comes from the Hessian eigenvalues the minima search
and the saddle refinement computed (eigenvalues within the minima's ``flat_tol`` of zero are flat directions and left
out; ``0`` where a transition state's eigenvalues are unknown). ``min1``/``min2`` are 1-based line numbers in
``min.data``. Energies are nats (kT = 1) and written with 17 significant digits, so a round trip is exact.

Positions are not part of this format (PATHSAMPLE keeps them in a separate binary file), so a network read back has
minima and transition states without coordinates; it gives exactly the same disconnectivity graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as _FilePath
from typing import TYPE_CHECKING, Any

import numpy as np
from energyscope.errors import BadArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from energyscope.tree.graph import DisconnectivityGraph
    from energyscope.search.network import TransitionNetwork

MIN_FILE = "min.data"
TS_FILE = "ts.data"


@dataclass
class PathsampleData:
    """The contents of a ``min.data`` / ``ts.data`` pair (0-based minima indices).

    Attributes:
        energy: (K,) minima energies, nats.
        log_vib: (K,) log product of each minimum's positive Hessian eigenvalues.
        order: (K,) point-group orders.
        inertia: (K, 3) moments of inertia.
        ts_energy: (T,) transition-state energies, nats.
        ts_log_vib: (T,) log product of each transition state's positive Hessian eigenvalues.
        ts_order: (T,) point-group orders.
        ts_minima: (T, 2) the two minima each transition state joins, 0-based.
        ts_inertia: (T, 3) moments of inertia.
    """

    energy: np.ndarray
    log_vib: np.ndarray
    order: np.ndarray
    inertia: np.ndarray
    ts_energy: np.ndarray
    ts_log_vib: np.ndarray
    ts_order: np.ndarray
    ts_minima: np.ndarray
    ts_inertia: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        """(T, 3) rows ``(i, j, energy)`` (0-based), the form :class:`DisconnectivityGraph` takes."""
        return np.column_stack([self.ts_minima.astype(float), self.ts_energy]).reshape(-1, 3)

    def tree(self) -> "DisconnectivityGraph":
        """The disconnectivity graph of these minima and transition states (ids = 0-based line numbers)."""
        from energyscope.tree.graph import DisconnectivityGraph
        return DisconnectivityGraph(self.energy, self.edges)

    def to_network(self) -> "TransitionNetwork":
        """A :class:`~energyscope.search.network.TransitionNetwork` without coordinates: minima with ``z`` of shape (K, 0)
        and no Hessian eigenvalues; each edge has ``energy``, an empty ``z``, ``negative_eigenvalue`` NaN, ``path``
        None and ``log_vib``. ``es.disconnectivity`` of it gives the same tree as :meth:`tree`."""
        from energyscope.search.minima import Minima
        from energyscope.search.network import TransitionNetwork
        K = len(self.energy)
        minima = Minima(z=np.zeros((K, 0)), energy=self.energy.copy(), hits=np.zeros(K, dtype=np.int64),
                        hessian_eigenvalues=np.zeros((K, 0)), stats={"source": "PATHSAMPLE min.data"})
        net = TransitionNetwork(minima, info={"source": "PATHSAMPLE ts.data"})
        for k in range(K):
            net.graph.nodes[k]["log_vib"] = float(self.log_vib[k])
        for (i, j), e, lv in zip(self.ts_minima, self.ts_energy, self.ts_log_vib):
            net.add_transition_state(int(i), int(j), float(e), z=np.zeros(0), negative_eigenvalue=float("nan"),
                                     path=None, log_vib=float(lv))
        return net


def log_vib(eigenvalues: Any, flat_tol: float = 0.0) -> float:
    """Log of the product of the eigenvalues above ``flat_tol`` (PATHSAMPLE's frequency factor); 0 when none.

    Args:
        eigenvalues: (d,) Hessian eigenvalues, nats per latent unit².
        flat_tol: eigenvalues at or below this are flat (or the negative one of a saddle) and left out.
    """
    ev = np.asarray(eigenvalues, dtype=float).ravel()
    pos = ev[np.isfinite(ev) & (ev > max(float(flat_tol), 0.0))]
    return float(np.log(pos).sum()) if len(pos) else 0.0


def _fmt(x: float) -> str:
    return f"{float(x):.16e}"


def write_pathsample(source: "TransitionNetwork | DisconnectivityGraph", directory: str | _FilePath,
                     min_name: str = MIN_FILE, ts_name: str = TS_FILE) -> tuple[_FilePath, _FilePath]:
    """Write ``min.data`` and ``ts.data`` for a transition network (or a disconnectivity graph).

    From a :class:`~energyscope.search.network.TransitionNetwork` every minimum and every transition state is written
    (self-loops and parallel edges included; PATHSAMPLE reads them too), with ``log_vib`` from the minima's
    ``hessian_eigenvalues`` and the edges' ``eigenvalues`` where present. From a
    :class:`~energyscope.tree.graph.DisconnectivityGraph` the minima (line k = position k) and the transition
    states that make its merges are written, with ``log_vib`` 0.

    Args:
        source: the network or graph.
        directory: where to write (created if missing).
        min_name, ts_name: file names.
    Returns:
        the paths of the two files.
    """
    from energyscope.tree.graph import DisconnectivityGraph
    from energyscope.search.network import TransitionNetwork
    if isinstance(source, TransitionNetwork):
        m = source.minima
        energy = np.asarray(m.energy, dtype=float)
        K = len(energy)
        flat_tol = float(m.flat_tol or 0.0)
        ev = None if m.hessian_eigenvalues is None else np.asarray(m.hessian_eigenvalues, dtype=float)
        lv = np.array([log_vib(ev[k], flat_tol) if ev is not None and ev.ndim == 2 and ev.shape[0] == K else 0.0
                       for k in range(K)])
        ts = []
        for u, v, d in source.graph.edges(data=True):
            tev = d.get("eigenvalues")
            ts.append((int(u), int(v), float(d["energy"]), log_vib(tev, flat_tol) if tev is not None else 0.0))
    elif isinstance(source, DisconnectivityGraph):
        energy = np.asarray(source.energy, dtype=float)
        K = len(energy)
        lv = np.zeros(K)
        ts = [(int(a), int(b), float(e), 0.0) for a, b, e in source.merge_edges]
    else:
        raise TypeError(f"write_pathsample takes a TransitionNetwork or a DisconnectivityGraph; got "
                        f"{type(source).__name__}")
    if not np.isfinite(energy).all():
        k = int(np.nonzero(~np.isfinite(energy))[0][0])
        raise BadArgumentError(f"minimum {k} has a non-finite energy {energy[k]!r}; min.data cannot hold it")
    for u, v, e, _ in ts:
        if not (0 <= u < K and 0 <= v < K):
            raise BadArgumentError(f"transition state joins minima ({u}, {v}) but there are only {K} minima")
        if not np.isfinite(e):
            raise BadArgumentError(f"transition state ({u}, {v}) has a non-finite energy {e!r}; ts.data cannot hold it")
    out = _FilePath(directory)
    out.mkdir(parents=True, exist_ok=True)
    min_path, ts_path = out / min_name, out / ts_name
    min_lines = [f"{_fmt(e)} {_fmt(l)} 1 0.0 0.0 0.0" for e, l in zip(energy, lv)]
    ts_lines = [f"{_fmt(e)} {_fmt(l)} 1 {u + 1} {v + 1} 0.0 0.0 0.0" for u, v, e, l in ts]
    min_path.write_text("".join(s + "\n" for s in min_lines))
    ts_path.write_text("".join(s + "\n" for s in ts_lines))
    return min_path, ts_path


def _read_table(path: _FilePath, n_cols: int, what: str) -> np.ndarray:
    rows = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < n_cols:
            raise BadArgumentError(f"{path}:{lineno}: expected at least {n_cols} columns in {what}, got {len(parts)}: "
                             f"{line.strip()!r}")
        try:
            # Fortran writes double-precision exponents with D.
            vals = [float(p.replace("D", "E").replace("d", "e")) for p in parts[:n_cols]]
        except ValueError:
            raise BadArgumentError(f"{path}:{lineno}: not a number in {what}: {line.strip()!r}") from None
        if not np.isfinite(vals[0]):
            raise BadArgumentError(f"{path}:{lineno}: non-finite energy in {what}: {line.strip()!r}")
        rows.append(vals)
    return np.array(rows, dtype=float).reshape(-1, n_cols)


def read_pathsample(directory: str | _FilePath | None = None, min_path: str | _FilePath | None = None,
                    ts_path: str | _FilePath | None = None) -> PathsampleData:
    """Read a ``min.data`` / ``ts.data`` pair.

    Args:
        directory: folder holding ``min.data`` and ``ts.data``; or give the two paths.
        min_path, ts_path: explicit file paths (override ``directory``).
    Returns:
        a :class:`PathsampleData`; ``.tree()`` is its disconnectivity graph, ``.to_network()`` a network.
    Raises:
        ValueError: a malformed line (named by file and line number), or a transition state naming a minimum that
            ``min.data`` does not have.
    """
    if min_path is None or ts_path is None:
        if directory is None:
            raise BadArgumentError("read_pathsample: give the directory or both min_path and ts_path")
        min_path = min_path or _FilePath(directory) / MIN_FILE
        ts_path = ts_path or _FilePath(directory) / TS_FILE
    min_path, ts_path = _FilePath(min_path), _FilePath(ts_path)
    mins = _read_table(min_path, 6, "min.data")
    if len(mins) == 0:
        raise BadArgumentError(f"{min_path}: no minima")
    ts = _read_table(ts_path, 8, "ts.data")
    K = len(mins)
    ij = ts[:, 3:5]
    bad = (ij != np.round(ij)) | (ij < 1) | (ij > K)
    if bad.any():
        k = int(np.nonzero(bad.any(axis=1))[0][0])
        raise BadArgumentError(f"{ts_path}: transition state on line {k + 1} joins minima {ij[k, 0]:g} and {ij[k, 1]:g}, "
                         f"but min.data has minima 1..{K}")
    return PathsampleData(energy=mins[:, 0], log_vib=mins[:, 1], order=mins[:, 2].astype(int), inertia=mins[:, 3:6],
                          ts_energy=ts[:, 0], ts_log_vib=ts[:, 1], ts_order=ts[:, 2].astype(int),
                          ts_minima=ij.astype(int) - 1, ts_inertia=ts[:, 5:8])


__all__ = ["PathsampleData", "write_pathsample", "read_pathsample", "log_vib", "MIN_FILE", "TS_FILE"]
