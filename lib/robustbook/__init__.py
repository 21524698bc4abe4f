"""robustbook: the shared library behind the robust-features book.

Reproduces three adversarial-training papers (see ``../shared/papers``):
feature prioritization and regularization (FP&R), AELF/AELFs and RLFAT.
The version is part of every run id (``runs.run_id``): bump it when a change
alters what a run computes.
"""

__version__ = "0.1.0"
