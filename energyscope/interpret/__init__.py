"""The interpretation stage: what each basin means. Basin masses (:mod:`.masses`), label agreement
(:mod:`.labels`), and decoded prototypes, samples, traversals and path filmstrips with the stage's entry point
:func:`~energyscope.interpret.stage.interpret` (:mod:`.stage`)."""
from energyscope.interpret.stage import (  # noqa: F401  (the stage's public names, as before the move)
    BasinSamples, Interpretation, OffData, PathStrip, Traversal, basin_samples, interpret, off_data, path_strip,
    path_strips, prototype_thumbnails, prototypes, traversal)
