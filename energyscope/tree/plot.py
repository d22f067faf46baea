"""Layout and drawing of a disconnectivity graph, the way the field draws them (Becker & Karplus 1997; Wales).

:func:`tree_layout` is pure numpy (positions and line segments, usable by any renderer); :func:`plot_disconnectivity`
draws it with matplotlib.

Conventions: the y axis is energy above the global minimum (nats = kT). Every minimum is its own branch ending at its
exact energy. Internal nodes sit at their exact merge energy, or, with display levels (``n_levels`` or ``delta_E``),
at the lowest level at or above it; merges that land on the same level are drawn as one node, so chains of
single-child nodes never appear. Under each node the child holding the node's lowest minimum is the anchor and the
others are placed outward from it, largest first, each on the side that is currently lighter (counting the leaves the
anchor subtree already has on either side of its own lowest minimum), so larger basins sit nearer the centre and the
global minimum ends up near the middle of the picture (within half the largest sibling subtree). Components that no
transition state joins hang from an explicit "not connected" root at the top.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
from tqdm.auto import tqdm

from energyscope.errors import BadArgumentError
from energyscope.render import plain_text

if TYPE_CHECKING:  # the graph draws itself with this module (DisconnectivityGraph.plot): arrows point here
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend
    from matplotlib.offsetbox import AnnotationBbox

    from energyscope.tree.graph import DisconnectivityGraph

NOT_CONNECTED = -1   # node key of the virtual "not connected" root


@dataclass
class Segment:
    """One drawn branch: a polyline from a parent node down to a child.

    Attributes:
        parent: display node key of the parent (tree node number, or ``NOT_CONNECTED``).
        child: display node key of the child (a leaf's node number is its position in the graph).
        xy: (3, 2) polyline: parent point, the bend, the child point (y relative to the global minimum, nats).
        leaf: id of the minimum when the child is a leaf, else None.
        dashed: True for the links from the "not connected" root.
    """

    parent: int
    child: int
    xy: np.ndarray
    leaf: int | None = None
    dashed: bool = False


@dataclass
class TreeLayout:
    """Positions for drawing a :class:`DisconnectivityGraph`.

    Attributes:
        order: minima ids from left to right.
        leaf_x: id -> x position (leaves are one unit apart).
        leaf_y: id -> energy above the global minimum, nats.
        node_xy: display node key -> (x, y) for internal display nodes, component roots and the virtual root.
        node_children: display node key -> its children's keys (after merging nodes on the same level).
        segments: every branch to draw.
        stems: (x, y_bottom, y_top) vertical stem above each component root (none under a "not connected" root).
        levels: display levels (relative energies) when binned, else None.
        components: minima ids of each component, the global minimum's first.
        component_roots: display node key of each component's root, in the same order.
        reference_energy: the global minimum's energy (y = energy − this).
        top: y of the highest thing drawn (the stem tops or the "not connected" root).
        x_center: x of the global minimum's leaf (the centre of the picture).
    """

    order: list[int]
    leaf_x: dict[int, float]
    leaf_y: dict[int, float]
    node_xy: dict[int, tuple[float, float]]
    node_children: dict[int, list[int]]
    segments: list[Segment]
    stems: list[tuple[float, float, float]]
    levels: np.ndarray | None
    components: list[set[int]]
    component_roots: list[int]
    reference_energy: float
    top: float
    x_center: float

    @property
    def not_connected(self) -> bool:
        return len(self.components) > 1


def _levels(rel_merge: np.ndarray, n_levels: int | None, delta_E: float | None) -> np.ndarray | None:
    if n_levels is not None and delta_E is not None:
        raise BadArgumentError("give either n_levels or delta_E for the display levels, not both")
    top = float(rel_merge.max()) if len(rel_merge) else 0.0
    if n_levels is not None:
        if int(n_levels) != n_levels or n_levels < 1:
            raise BadArgumentError(f"n_levels must be a positive integer; got {n_levels!r}")
        span = top if top > 0 else 1.0
        return span * np.arange(1, int(n_levels) + 1) / int(n_levels)
    if delta_E is not None:
        d = float(delta_E)
        if not (np.isfinite(d) and d > 0):
            raise BadArgumentError(f"delta_E must be a positive number of nats; got {delta_E!r}")
        n = max(1, int(np.ceil(top / d - 1e-12)))
        return d * np.arange(1, n + 1)
    return None


def _display_heights(graph: DisconnectivityGraph, rel: np.ndarray, levels: np.ndarray | None) -> np.ndarray:
    """(n_nodes,) drawn y of every tree node (nats above the global minimum): merges raised to their display level."""
    K = len(graph)
    y = rel.copy()
    if levels is not None and graph.n_nodes > K:
        tol = 1e-9 * max(1.0, float(levels[-1]))
        idx = np.searchsorted(levels, rel[K:] - tol, side="left")
        y[K:] = np.where(idx < len(levels), levels[np.minimum(idx, len(levels) - 1)], rel[K:])
    return y


def _branch_slant(slant: float | None, levels: np.ndarray | None, span: float) -> float:
    """Height (nats) of each branch's slanted part: ``slant`` if given, else one level spacing or 5% of ``span``."""
    if slant is None:
        if levels is not None and len(levels) > 1:
            slant = float(levels[1] - levels[0])
        elif levels is not None:
            slant = 0.5 * float(levels[0])
        else:
            slant = 0.05 * span
        if not slant > 0:
            slant = 1.0
    return float(slant)


def _display_children(graph: DisconnectivityGraph, y: np.ndarray, n: int, same: float) -> list[int]:
    """Children of node ``n`` on paper: internal children within ``same`` nats of its drawn height are fused into it."""
    K = len(graph)
    out, stack = [], list(graph.node_children(n))
    while stack:
        c = stack.pop()
        if c >= K and y[n] - y[c] <= same:
            stack.extend(graph.node_children(c))
        else:
            out.append(c)
    return out


def _display_tree(graph: DisconnectivityGraph, y: np.ndarray, same: float,
                  top_key: int) -> tuple[dict[int, list[int]], list[int]]:
    """Display node key -> its (unordered) display children, and all keys top-down (each parent before its children)."""
    K = len(graph)
    roots = graph.roots
    raw: dict[int, list[int]] = {}
    if len(roots) > 1:
        raw[NOT_CONNECTED] = list(roots)
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n >= K:
            raw[n] = _display_children(graph, y, n, same)
            stack.extend(raw[n])
    post, stack = [], [top_key]
    while stack:
        n = stack.pop()
        post.append(n)
        stack.extend(raw.get(n, []))
    return raw, post


def _subtree_size(graph: DisconnectivityGraph, n: int) -> int:
    """Number of minima under display node ``n`` (all of them under the "not connected" root)."""
    return len(graph) if n == NOT_CONNECTED else int(graph.size[n])


def _energy_rank(graph: DisconnectivityGraph) -> np.ndarray:
    """(K,) rank of each minimum (by position) in energy order, ties broken by position."""
    K = len(graph)
    rank = np.empty(K, dtype=int)
    rank[np.lexsort((np.arange(K), graph.energy))] = np.arange(K)
    return rank


def _arrange_children(graph: DisconnectivityGraph, raw: dict[int, list[int]],
                      post: list[int]) -> dict[int, list[int]]:
    """Display node key -> children left to right: the anchor, others outward largest first on the lighter side."""
    K = len(graph)
    rank = _energy_rank(graph)
    roots = graph.roots

    def lowest_rank(n: int) -> int:
        return int(rank[graph.lowest[roots[0]]]) if n == NOT_CONNECTED else int(rank[graph.lowest[n]])

    # extent[n] = (leaves left of the subtree's lowest minimum, leaves right of it).
    extent: dict[int, tuple[int, int]] = {p: (0, 0) for p in range(K)}
    node_children: dict[int, list[int]] = {}
    for n in reversed(post):
        if n not in raw:
            continue
        # The child holding the lowest minimum is the anchor; the others go outward, largest first, each on the side
        # that is currently lighter counting the anchor's own leaves, so the lowest minimum ends up near the middle
        # and larger basins nearer it (a planar drawing allows no more freedom than the side).
        ch = sorted(raw[n], key=lowest_rank)
        centre, rest = ch[0], sorted(ch[1:], key=lambda c: (-_subtree_size(graph, c), lowest_rank(c)))
        wl, wr = extent[centre]
        left, right = [], []
        for c in rest:
            if wr <= wl:
                right.append(c)
                wr += _subtree_size(graph, c)
            else:
                left.append(c)
                wl += _subtree_size(graph, c)
        node_children[n] = left[::-1] + [centre] + right
        extent[n] = (wl, wr)
    return node_children


def _centre_global_minimum(graph: DisconnectivityGraph, node_children: dict[int, list[int]], top_key: int) -> None:
    """Mirror (in place) children lists along the global minimum's ancestors so that it lands near the middle."""
    # Along its chain of ancestors, each node's children list may be reversed on its own (a mirror image keeps the
    # centre-outward order) and only swaps which side that node's siblings land on. Decide the chain's nodes largest
    # imbalance first, each the way that keeps the running left-right difference smallest.
    K = len(graph)
    g_leaf = int(graph.lowest[graph.roots[0]])
    chain, n = [], top_key
    while n in node_children:
        chs = node_children[n]
        k = next(i for i, c in enumerate(chs) if c == g_leaf or (c >= K and graph.lowest[c] == g_leaf))
        a = sum(_subtree_size(graph, c) for c in chs[:k])
        b = sum(_subtree_size(graph, c) for c in chs[k + 1:])
        chain.append((abs(a - b), n, a - b))
        n = chs[k]
    diff = 0
    for _, n, ab in sorted(chain, key=lambda t: -t[0]):
        if abs(diff - ab) < abs(diff + ab):
            node_children[n] = node_children[n][::-1]
            ab = -ab
        diff += ab


def _leaf_order(node_children: dict[int, list[int]], top_key: int, K: int) -> list[int]:
    """Positions of the ``K`` minima from left to right (depth-first, left to right)."""
    order_pos: list[int] = []
    stack = [top_key]
    while stack:
        n = stack.pop()
        if n >= 0 and n < K:
            order_pos.append(n)
        else:
            stack.extend(reversed(node_children[n]))
    return order_pos


def _node_positions(graph: DisconnectivityGraph, post: list[int], node_children: dict[int, list[int]],
                    leaf_x: dict[int, float], y: np.ndarray,
                    slant: float) -> tuple[dict[int, float], dict[int, tuple[float, float]], float]:
    """x of every display node (mean of its children's), (x, y) of internal nodes and roots, y of the virtual root."""
    K = len(graph)
    roots = graph.roots
    node_xy: dict[int, tuple[float, float]] = {}
    x_of: dict[int, float] = {p: leaf_x[int(graph.ids[p])] for p in range(K)}
    root_tops = [float(y[r]) for r in roots]
    nc_y = max(root_tops) + 2.0 * slant
    for n in reversed(post):
        if n in node_children:
            x_of[n] = float(np.mean([x_of[c] for c in node_children[n]]))
            node_xy[n] = (x_of[n], nc_y if n == NOT_CONNECTED else float(y[n]))
    for r in roots:
        node_xy.setdefault(r, (x_of[r], float(y[r])))
    return x_of, node_xy, nc_y


def _segments(graph: DisconnectivityGraph, node_children: dict[int, list[int]],
              node_xy: dict[int, tuple[float, float]], x_of: dict[int, float], y: np.ndarray,
              slant: float) -> list[Segment]:
    """One :class:`Segment` per parent-child link, its (3, 2) polyline bending ``slant`` nats below the parent."""
    K = len(graph)
    segments: list[Segment] = []
    for n, chs in node_children.items():
        xp, yp = node_xy[n]
        for c in chs:
            xc, yc = x_of[c], float(y[c])
            yb = yp - min(slant, max(yp - yc, 0.0))
            segments.append(Segment(parent=n, child=c, xy=np.array([[xp, yp], [xc, yb], [xc, yc]]),
                                    leaf=int(graph.ids[c]) if c < K else None, dashed=(n == NOT_CONNECTED)))
    return segments


def _stems(roots: list[int], node_xy: dict[int, tuple[float, float]], slant: float,
           nc_y: float) -> tuple[list[tuple[float, float, float]], float]:
    """The (x, y_bottom, y_top) stem above a lone root (none under a "not connected" root) and the top y drawn."""
    stems = []
    if len(roots) == 1:
        xr, yr = node_xy[roots[0]]
        stems.append((xr, yr, yr + slant))
        top = yr + slant
    else:
        top = nc_y
    return stems, top


def tree_layout(graph: DisconnectivityGraph, n_levels: int | None = None, delta_E: float | None = None,
                slant: float | None = None) -> TreeLayout:
    """Positions and branches for drawing ``graph``.

    Args:
        graph: the tree.
        n_levels: draw merges on this many evenly spaced levels between the global minimum and the highest merge.
        delta_E: or on levels ``delta_E, 2·delta_E, ...`` above the global minimum (nats).
        slant: height (nats) of the slanted part of each branch below its parent (default: one level spacing, or
            5% of the energy span when drawing exact merge energies).
    Returns:
        a :class:`TreeLayout`.
    """
    K = len(graph)
    e_ref = float(graph.energy[graph.lowest[graph.roots[0]]])
    rel = graph.node_energy - e_ref
    levels = _levels(rel[K:], n_levels, delta_E)
    y = _display_heights(graph, rel, levels)
    span = float(max(y.max(), rel[:K].max(), 0.0))
    slant = _branch_slant(slant, levels, span)

    roots = graph.roots
    top_key = NOT_CONNECTED if len(roots) > 1 else roots[0]
    # Display tree (top-down), then arrange children bottom-up. Internal children drawn at the same height as their
    # parent are fused (within 1e-9 of the energy span: merges that differ only by round-off, e.g. symmetric saddles
    # refined separately, are one node on paper).
    raw, post = _display_tree(graph, y, 1e-9 * max(span, 1.0), top_key)
    node_children = _arrange_children(graph, raw, post)
    _centre_global_minimum(graph, node_children, top_key)

    order_pos = _leaf_order(node_children, top_key, K)
    leaf_x = {int(graph.ids[p]): float(k) for k, p in enumerate(order_pos)}
    leaf_y = {int(graph.ids[p]): float(rel[p]) for p in range(K)}
    x_of, node_xy, nc_y = _node_positions(graph, post, node_children, leaf_x, y, slant)
    segments = _segments(graph, node_children, node_xy, x_of, y, slant)
    stems, top = _stems(roots, node_xy, slant, nc_y)
    x_center = leaf_x[graph.global_minimum]
    return TreeLayout(order=[int(graph.ids[p]) for p in order_pos], leaf_x=leaf_x, leaf_y=leaf_y, node_xy=node_xy,
                      node_children=node_children, segments=segments, stems=stems, levels=levels,
                      components=graph.components, component_roots=list(roots), reference_energy=e_ref,
                      top=float(top), x_center=float(x_center))


# ---------------------------------------------------------------------------------------------------- drawing
@dataclass
class DisconnectivityPlot:
    """What :func:`plot_disconnectivity` drew, for annotating further.

    Attributes:
        fig, ax: the matplotlib figure and axes.
        leaf_x: minimum id -> x of its branch (data coordinates).
        leaf_y: minimum id -> y of its branch end (energy above the global minimum, nats).
        order: minima ids left to right.
        components: minima ids of each connected component, the global minimum's first; more than one means the
            drawing has a "not connected" root.
        layout: the full :class:`TreeLayout`.
        thumbnails: minimum id -> the matplotlib ``AnnotationBbox`` of its thumbnail.
        colors: minimum id -> the RGBA colour of its leaf.
        colorbar: the colorbar when colouring by a continuous value, else None.
        legend: the legend when colouring by group, else None.
    """

    fig: Figure
    ax: Axes
    leaf_x: dict[int, float]
    leaf_y: dict[int, float]
    order: list[int]
    components: list[set[int]]
    layout: TreeLayout
    thumbnails: dict[int, AnnotationBbox] = field(default_factory=dict)
    colors: dict[int, tuple] = field(default_factory=dict)
    colorbar: Colorbar | None = None
    legend: Legend | None = None

    @property
    def not_connected(self) -> list[set[int]]:
        """Components not joined to the global minimum's (listed under the "not connected" root)."""
        return self.components[1:]


def _per_minimum(spec: Any, ids: list[int], name: str) -> dict[int, Any]:
    """A per-minimum value given as a mapping, a callable or a sequence indexed by minimum id."""
    if isinstance(spec, Mapping):
        missing = [m for m in ids if m not in spec]
        if missing:
            raise BadArgumentError(f"{name}: no value for minima {missing[:5]}")
        return {m: spec[m] for m in ids}
    if callable(spec):
        return {m: spec(m) for m in ids}
    seq = list(spec) if not isinstance(spec, np.ndarray) else spec
    need = max(ids) + 1
    if len(seq) < need:
        raise BadArgumentError(f"{name}: has {len(seq)} entries but minimum ids go up to {need - 1}; give one value per "
                         f"minimum (indexed by minimum id), a mapping id -> value, or a callable")
    return {m: seq[m] for m in ids}


def _as_image(a: Any, m: int) -> np.ndarray:
    """A thumbnail as (H, W) or (H, W, 3|4); channels-first (1|3|4, H, W) is transposed."""
    img = np.asarray(a)
    if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[-1] not in (3, 4):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] in (3, 4))) or min(img.shape[:2]) < 1:
        raise BadArgumentError(f"thumbnail({m}) returned an array of shape {np.shape(a)}; expected (H, W), (H, W, 3|4) or "
                         f"(1|3|4, H, W)")
    img = img.astype(float)
    if not np.isfinite(img).all():
        raise BadArgumentError(f"thumbnail({m}) contains non-finite values")
    return img


def _figure_size(n: int, with_thumbnails: bool) -> tuple[float, float]:
    """(width, height) in inches of a new figure for ``n`` leaves (taller and wider per leaf with thumbnails)."""
    width = float(np.clip((0.55 if with_thumbnails else 0.3) * n + 2.0, 5.0, 30.0))
    return width, 6.0 if with_thumbnails else 5.5


def _group_colors(ax: Axes, vals: dict[int, Any], cmap: Any,
                  color_title: str | None) -> tuple[dict[int, tuple], dict[int, Any], Any]:
    """RGBA colour and group of each minimum with a group (one palette colour per group), and the legend drawn."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    groups = sorted({v for v in vals.values() if v is not None}, key=lambda v: (str(type(v)), v))
    cm = plt.get_cmap(cmap or ("tab10" if len(groups) <= 10 else "tab20"))
    ncol = getattr(cm, "N", 256)
    palette = {g: cm(k % ncol) if ncol <= 20 else cm(k / max(1, len(groups) - 1))
               for k, g in enumerate(groups)}
    colors: dict[int, tuple] = {}
    group_of: dict[int, Any] = {}
    for m, v in vals.items():
        if v is not None:
            colors[m] = palette[v]
            group_of[m] = v
    handles = [Line2D([], [], color=palette[g], lw=3, label=plain_text(g)) for g in groups]
    legend = None
    if handles:
        # Outside the axes on the right, where it cannot cover branches.
        legend = ax.legend(handles=handles, title=color_title, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                           fontsize="small", title_fontsize="small", frameon=False,
                           ncol=1 if len(handles) <= 12 else 2)
    return colors, group_of, legend


def _value_colors(fig: Figure, ax: Axes, ids: list[int], vals: dict[int, Any], cmap: Any,
                  color_title: str | None) -> tuple[dict[int, tuple], Any]:
    """RGBA colour of each minimum from its value on a colormap (grey when missing), and the colorbar drawn."""
    import matplotlib.pyplot as plt
    from matplotlib import colors as mcolors

    v = np.array([np.nan if vals[m] is None else float(vals[m]) for m in ids])
    finite = np.isfinite(v)
    cm = plt.get_cmap(cmap or "viridis")
    lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (0.0, 1.0)
    norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1.0)
    colors = {m: cm(norm(val)) if np.isfinite(val) else mcolors.to_rgba("0.75") for m, val in zip(ids, v)}
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cm)
    sm.set_array(v[finite])
    colorbar = fig.colorbar(sm, ax=ax, label=color_title, fraction=0.04, pad=0.02)
    return colors, colorbar


def _leaf_colors(fig: Figure, ax: Axes, ids: list[int], base: tuple, color_by: Any, categorical: bool | None, cmap: Any,
                 color_label: str | None) -> tuple[dict[int, tuple], dict[int, Any], Any, Any]:
    """RGBA colour of each minimum, its group (group colouring only), and the colorbar and legend drawn (or None)."""
    colors: dict[int, tuple] = {m: base for m in ids}
    group_of: dict[int, Any] = {}
    colorbar = legend = None
    color_title = None if color_label is None else plain_text(color_label)
    if color_by is not None:
        vals = _per_minimum(color_by, ids, "color_by")
        arr = np.asarray(list(vals.values()))
        is_cat = categorical if categorical is not None else not np.issubdtype(arr.dtype, np.floating)
        if is_cat:
            group_colors, group_of, legend = _group_colors(ax, vals, cmap, color_title)
            colors.update(group_colors)
        else:
            value_colors, colorbar = _value_colors(fig, ax, ids, vals, cmap, color_title)
            colors.update(value_colors)
    return colors, group_of, colorbar, legend


def _group_below(graph: DisconnectivityGraph, node_children: dict[int, list[int]], group_of: dict[int, Any],
                 node: int, memo: dict[int, Any]) -> Any:
    """``("g", group)`` when every minimum under display node ``node`` has that one group, else None (memoised)."""
    if node in memo:
        return memo[node]
    if 0 <= node < len(graph):
        g = group_of.get(int(graph.ids[node]), None)
        res = ("g", g) if g is not None else None
    else:
        subs = {_group_below(graph, node_children, group_of, c, memo) for c in node_children.get(node, [])}
        res = subs.pop() if len(subs) == 1 else None
    memo[node] = res
    return res


def _branch_colors(graph: DisconnectivityGraph, lay: TreeLayout, ids: list[int], colors: dict[int, tuple],
                   group_of: dict[int, Any]) -> dict[int, tuple]:
    """Display node key -> RGBA of its group, for the nodes whose minima all share one group."""
    memo: dict[int, Any] = {}
    branch_color: dict[int, tuple] = {}
    for node in lay.node_children:
        g = _group_below(graph, lay.node_children, group_of, node, memo)
        if g is not None:
            branch_color[node] = colors[next(m for m in ids if group_of.get(m) == g[1])]
    return branch_color


def _branch_lines(graph: DisconnectivityGraph, lay: TreeLayout, colors: dict[int, tuple],
                  branch_color: dict[int, tuple],
                  base: tuple) -> tuple[list[np.ndarray], list[tuple], list[np.ndarray]]:
    """Solid polylines ((2|3, 2) arrays, data coordinates) with their RGBA colours, and the dashed polylines."""
    K = len(graph)
    solid, solid_c, dashed = [], [], []
    for s in lay.segments:
        if s.dashed:
            dashed.append(s.xy)
            continue
        if s.leaf is not None:
            # The slanted part in the parent's colour, the leaf's own stretch in its colour.
            pc = branch_color.get(s.parent, base)
            solid += [s.xy[:2], s.xy[1:]]
            solid_c += [pc if colors[s.leaf] == base else colors[s.leaf], colors[s.leaf]]
        else:
            solid.append(s.xy)
            solid_c.append(branch_color.get(s.child, base))
    for xs, y0, y1 in lay.stems:
        solid.append(np.array([[xs, y0], [xs, y1]]))
        root = lay.component_roots[0]
        solid_c.append(branch_color.get(root, colors.get(graph.global_minimum, base) if root < K else base))
    return solid, solid_c, dashed


def _draw_not_connected(ax: Axes, lay: TreeLayout, dashed: list[np.ndarray], base: tuple, linewidth: float,
                        show_components: bool) -> None:
    """Draw the dashed links from the "not connected" root, the root with its label, and each component's label."""
    from matplotlib.collections import LineCollection

    ax.add_collection(LineCollection(dashed, colors=[base], linewidths=linewidth, linestyles="dashed"))
    xr, yr = lay.node_xy[NOT_CONNECTED]
    ax.plot([xr], [yr], marker="o", color=base, ms=4)
    ax.annotate(f"not connected ({len(lay.components)} components)", (xr, yr), xytext=(0, 4),
                textcoords="offset points", ha="center", va="bottom", fontsize="small")
    if show_components:
        for k, r in enumerate(lay.component_roots):
            xr2, yr2 = lay.node_xy[r]
            comp = lay.components[k]
            txt = f"C{k + 1}: {len(comp)} min" if len(comp) > 1 else f"C{k + 1}: min {next(iter(comp))}"
            ax.annotate(txt, (xr2, yr2), xytext=(2, 2), textcoords="offset points", fontsize="x-small",
                        color="0.35", ha="left", va="bottom")


def _axes_size_pt(fig: Figure, ax: Axes) -> tuple[float, float]:
    """(width, height) of the axes in points."""
    pos = ax.get_position()
    fw, fh = fig.get_size_inches()
    return fw * 72 * pos.width, fh * 72 * pos.height


def _leaf_label_texts(leaf_labels: Any, ids: list[int], ax_w_pt: float,
                      x_span: float) -> tuple[dict[int, str], bool, float]:
    """Label text per minimum, whether labels are turned 90°, and the height (points) they take under the leaves."""
    label_pt = 0.0
    labels: dict[int, str] = {}
    rotate = False
    if leaf_labels is not False and leaf_labels is not None:
        if leaf_labels is True:
            labels = {m: str(m) for m in ids}
        else:
            labels = {m: str(v) for m, v in _per_minimum(leaf_labels, ids, "leaf_labels").items()}
        # Upright when the longest label fits the leaf spacing, else turned 90°.
        rotate = 5.0 * max(len(t) for t in labels.values()) > 0.95 * ax_w_pt / x_span
        label_pt = 4.0 + (6.0 * max(len(t) for t in labels.values()) if rotate else 9.0)
    return labels, rotate, label_pt


def _thumbnail_images(thumbnail: Callable[[int], Any] | None, ids: list[int], progress: bool) -> dict[int, np.ndarray]:
    """Minimum id -> its thumbnail as a float (H, W) or (H, W, 3|4) array, for the minima the callback gives one."""
    thumbs: dict[int, np.ndarray] = {}
    if thumbnail is not None:
        if not callable(thumbnail):
            raise TypeError("thumbnail must be a callable thumbnail(minimum_id) -> image array or None")
        for m in tqdm(ids, desc="thumbnails", disable=not progress, leave=False):
            img = thumbnail(m)
            if img is not None:
                thumbs[m] = _as_image(img, m)
    return thumbs


def _thumbnail_width_pt(thumbs: dict[int, np.ndarray], thumbnail_size: float | None, ax_w_pt: float,
                        x_span: float) -> float:
    """Thumbnail width in points: ``thumbnail_size``, else 90% of the leaf spacing, at most 40 (0 without any)."""
    thumb_pt = 0.0
    if thumbs:
        thumb_pt = float(thumbnail_size) if thumbnail_size else float(min(40.0, 0.9 * ax_w_pt / x_span))
    return thumb_pt


def _y_limits(lay: TreeLayout, label_pt: float, thumbs: dict[int, np.ndarray], thumb_pt: float,
              ax_h_pt: float) -> tuple[float, float]:
    """(bottom, top) y limits (nats): room above the top and, below the lowest leaves, for labels and thumbnails."""
    y_low = min(lay.leaf_y.values())
    y_high = lay.top + 0.02 * max(lay.top - y_low, 1e-12)
    need_pt = 3.0 + label_pt + (thumb_pt * max(t.shape[0] / t.shape[1] for t in thumbs.values()) + 2.0
                                if thumbs else 0.0)
    frac = min(need_pt / max(ax_h_pt, 1.0), 0.45)
    span = y_high - y_low if y_high > y_low else 1.0
    y_bottom = y_low - 0.03 * span
    if need_pt > 3.0:
        y_bottom = (y_low - frac * y_high) / (1.0 - frac)
    return y_bottom, y_high


def _draw_leaf_labels(ax: Axes, lay: TreeLayout, labels: dict[int, str], rotate: bool) -> None:
    """Write each label just under its leaf's end (upright, or turned 90° when ``rotate``)."""
    for m, t in labels.items():
        ax.annotate(plain_text(t), (lay.leaf_x[m], lay.leaf_y[m]), xytext=(0, -3), textcoords="offset points",
                    ha="center", va="top", fontsize="x-small", rotation=90 if rotate else 0, annotation_clip=False)


def _draw_thumbnails(ax: Axes, lay: TreeLayout, thumbs: dict[int, np.ndarray], thumb_pt: float, label_pt: float,
                     thumbnail_cmap: str) -> dict[int, AnnotationBbox]:
    """Draw each thumbnail ``thumb_pt`` points wide under its leaf (and label); minimum id -> its AnnotationBbox."""
    from matplotlib import colors as mcolors
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    drawn: dict[int, AnnotationBbox] = {}
    if thumbs:
        gray = [t for t in thumbs.values() if t.ndim == 2]
        lo = min(float(t.min()) for t in gray) if gray else 0.0
        hi = max(float(t.max()) for t in gray) if gray else 1.0
        norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1.0)
        for m, t in thumbs.items():
            if t.ndim == 3:
                t = np.clip(t / 255.0 if t.max() > 1.0 else t, 0.0, 1.0)
            zoom = thumb_pt / t.shape[1]
            oi = (OffsetImage(t, zoom=zoom, cmap=thumbnail_cmap, norm=norm) if t.ndim == 2
                  else OffsetImage(t, zoom=zoom))
            ab = AnnotationBbox(oi, (lay.leaf_x[m], lay.leaf_y[m]), xybox=(0, -(3.0 + label_pt)),
                                xycoords="data", boxcoords="offset points", box_alignment=(0.5, 1.0),
                                frameon=False, pad=0.0, annotation_clip=False)
            ax.add_artist(ab)
            drawn[m] = ab
    return drawn


def _finish_axes(ax: Axes, title: str | None) -> None:
    """No x ticks, only the left spine, the energy axis label and the title."""
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_ylabel("energy above global minimum (kT)")
    if title:
        ax.set_title(plain_text(title))


def plot_disconnectivity(graph: DisconnectivityGraph, ax: Axes | None = None, n_levels: int | None = None,
                         delta_E: float | None = None, *, color_by: Any = None, categorical: bool | None = None,
                         cmap: Any = None, color_label: str | None = None, color_branches: bool = True,
                         leaf_labels: Any = False, thumbnail: Callable[[int], Any] | None = None,
                         thumbnail_size: float | None = None, thumbnail_cmap: str = "gray_r",
                         linewidth: float = 1.0, color: Any = "0.2", slant: float | None = None,
                         title: str | None = None, show_components: bool = True,
                         progress: bool = False) -> DisconnectivityPlot:
    """Draw a disconnectivity graph with matplotlib.

    Args:
        graph: the tree (prune first with :meth:`DisconnectivityGraph.prune` to show fewer minima).
        ax: axes to draw in (a new figure when None).
        n_levels, delta_E: display levels (see :func:`tree_layout`); the tree itself stays exact.
        color_by: a value per minimum — a sequence indexed by minimum id, a mapping id -> value or a callable —
            e.g. each basin's dominant label (drawn as groups with a legend) or its data mass (a colormap with a
            colorbar). Continuous when the values are floats, unless ``categorical`` says otherwise.
        categorical: force group (True) or continuous (False) colouring.
        cmap: colormap (default ``tab10``/``tab20`` for groups, ``viridis`` for values).
        color_label: legend title / colorbar label.
        color_branches: with groups, a branch whose minima all share one group takes its colour.
        leaf_labels: True for minimum ids, or per-minimum text (sequence, mapping, callable), drawn under leaves.
        thumbnail: callback ``thumbnail(id) -> (H, W) | (H, W, 3|4) | (C, H, W) array or None`` (e.g. the decoded
            prototype); images are drawn under each leaf with one grey scale shared by all thumbnails.
        thumbnail_size: thumbnail width in points (default: fits the leaf spacing, at most 40).
        thumbnail_cmap: colormap for single-channel thumbnails.
        linewidth, color: branch line width and default colour.
        slant: height of the slanted part of each branch (nats).
        title: axes title.
        show_components: label each component's root when there are several.
        progress: progress bar while rendering thumbnails.
    Returns:
        a :class:`DisconnectivityPlot` (figure, axes, leaf x-positions, components, ...).
    """
    import matplotlib.pyplot as plt
    from matplotlib import colors as mcolors
    from matplotlib.collections import LineCollection

    if not callable(getattr(graph, "node_children", None)):  # the one thing only a merge tree has
        raise TypeError(f"plot_disconnectivity takes a DisconnectivityGraph; got {type(graph).__name__}")
    lay = tree_layout(graph, n_levels=n_levels, delta_E=delta_E, slant=slant)
    ids = lay.order
    n = len(ids)
    fig, ax = plt.subplots(figsize=_figure_size(n, thumbnail is not None)) if ax is None else (ax.figure, ax)
    base = mcolors.to_rgba(color)

    # ---- colours: leaves, then branches whose minima all share a group
    colors, group_of, colorbar, legend = _leaf_colors(fig, ax, ids, base, color_by, categorical, cmap, color_label)
    branch_color = _branch_colors(graph, lay, ids, colors, group_of) if group_of and color_branches else {}

    # ---- branches
    solid, solid_c, dashed = _branch_lines(graph, lay, colors, branch_color, base)
    ax.add_collection(LineCollection(solid, colors=solid_c, linewidths=linewidth, capstyle="round"))
    if dashed:
        _draw_not_connected(ax, lay, dashed, base, linewidth, show_components)

    # ---- limits: x around the leaves (the layout keeps the global minimum mid-way), room below for labels, thumbnails
    ax.set_xlim(-0.75, (n - 1) + 0.75)
    x_span = (n - 1) + 1.5
    ax_w_pt, ax_h_pt = _axes_size_pt(fig, ax)
    labels, rotate, label_pt = _leaf_label_texts(leaf_labels, ids, ax_w_pt, x_span)
    thumbs = _thumbnail_images(thumbnail, ids, progress)
    thumb_pt = _thumbnail_width_pt(thumbs, thumbnail_size, ax_w_pt, x_span)
    ax.set_ylim(*_y_limits(lay, label_pt, thumbs, thumb_pt, ax_h_pt))

    _draw_leaf_labels(ax, lay, labels, rotate)
    drawn = _draw_thumbnails(ax, lay, thumbs, thumb_pt, label_pt, thumbnail_cmap)
    _finish_axes(ax, title)
    return DisconnectivityPlot(fig=fig, ax=ax, leaf_x=lay.leaf_x, leaf_y=lay.leaf_y, order=lay.order,
                               components=lay.components, layout=lay, thumbnails=drawn, colors=colors,
                               colorbar=colorbar, legend=legend)


__all__ = ["tree_layout", "plot_disconnectivity", "TreeLayout", "Segment", "DisconnectivityPlot", "NOT_CONNECTED"]
