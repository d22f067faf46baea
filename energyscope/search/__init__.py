"""The search stage: minima, minimum-energy paths, saddles and the transition network.

Flow inside the package (arrows point to what a module imports)::

    network ─► neb ─► saddles ─► bands ─► paths
       │        │        │
       └────────┴────────┴──► book ─► minima ─► starts, nonsmooth   (and, below the package: optim, sampling, landscape)

``book`` holds the known minima (``MinimaBook``, shared by saddles, neb and network) and the basin-quench recipe
(``quench_to_minima``: descend, then match the end points to known minima or add new ones), used by saddles, neb and
``interpret.masses``.

Nothing here knows of the tree, the interpretation, reports or files (pyproject's import contracts).
"""
