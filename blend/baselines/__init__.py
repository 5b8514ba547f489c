"""Inference-time baselines on the blend sampler's model, noise and seeds: best-of-N (also over DB-MPA and
DB-MPA-LS), CoDe, reward-gradient guidance and SMC, with per-image cost accounting (docs/method.md §6).

Entry point: :func:`blend.baselines.dispatch.sample_any` (any method, plain or baseline). Submodules are not
imported here, so that ``blend.sampler`` and this package can import each other's leaves without a cycle.
"""
