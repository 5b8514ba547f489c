"""The ground floor (docs/design.md): atomic I/O and locks, logging, images, figure style, prompt files, the CLIP
tokenizer (built offline from ``assets/``), seeding and
provenance. It imports nothing of the project; every other package builds on it."""
