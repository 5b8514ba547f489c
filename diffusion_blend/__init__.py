"""Diffusion Blend: the project's own package (shared utilities: atomic I/O, logging, prompts, provenance, images).

Importing it is cheap (no torch); the method lives in the design card's top-level packages
``diffusion`` (one model), ``blend`` (sampling-time methods), ``dpok`` (training) and ``rewards``.
"""
