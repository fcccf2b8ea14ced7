"""``facemorphic predict``: apply a trained run to a new recording (per-frame AU probabilities, predicted
3DMM AU coefficients, the recording's AU decision, and optionally a Figure-3 style video)."""
