"""The disconnectivity tree: the exact merge tree of a transition network (:mod:`.graph`) and its picture
(:mod:`.plot`). Knows the search stage's results, nothing of interpretation or reports."""
