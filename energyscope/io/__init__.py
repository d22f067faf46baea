"""Files. Checkpoints in: :mod:`.checkpoint` (the format, ``load_checkpoint`` / ``save_checkpoint`` /
``describe_checkpoint``) built on :mod:`.safe_load` (weights-only loading, the trust rule), :mod:`.role_specs` and
:mod:`.spec` (declarative specs), :mod:`.layouts` (finding the parts of public projects' checkpoints),
:mod:`.assemble` (modules from the found tensors) and :mod:`.entry_points` (``pkg.module:fn``); errors in
:mod:`.errors`. Results out and back: :mod:`.codec` (the JSON + npz form, the registry of saved types) and
:mod:`.results` (atomic saves, the writer's lock, hostile-file checks). PATHSAMPLE's files: :mod:`.pathsample`."""
