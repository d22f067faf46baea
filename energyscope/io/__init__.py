"""Files: checkpoints in (:mod:`.checkpoint`, declarative specs :mod:`.spec`), results out and back
(:mod:`.results`: analysis.json + arrays.npz), PATHSAMPLE's files both ways (:mod:`.pathsample`)."""
