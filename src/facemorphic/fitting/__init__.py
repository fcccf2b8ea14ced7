"""Per-frame 3DMM fitting to 2D landmarks: the batched closed form (:mod:`.closed_form`), the two-step
fit of a recording (:mod:`.recording`) and ``facemorphic fit`` (:mod:`.cli`)."""
