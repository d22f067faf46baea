"""The search stage: minima, minimum-energy paths, saddles and the transition network.

Flow inside the package (arrows point to what a module imports)::

    network ─► neb ─► saddles ─► bands ─► paths
       │        │        │
       └────────┴────────┴──► minima ─► starts, nonsmooth   (and, below the package: optim, sampling, landscape)

Nothing here knows of the tree, the interpretation, reports or files (pyproject's import contracts).
"""
