"""Inference-time alignment by blending noise predictions (DB-MPA, DB-KLA, DB-MPA-LS) and baselines."""
