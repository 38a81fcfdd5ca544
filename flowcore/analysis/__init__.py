"""Analyses built on trajectories and attractors (need the ``analysis`` extra only where stated).

- :mod:`flowcore.analysis.ood.metrics` — AUROC, AUPR-In/Out, FPR95 in both named conventions.
- :mod:`flowcore.analysis.ood.baselines` — OOD baselines: reconstruction error, latent KNN,
  latent Mahalanobis, latent norm.
- :mod:`flowcore.analysis.ood` — the trajectory detectors and the detector suite.
- :mod:`flowcore.analysis.ood.evaluation` — every method × every OOD set: table, CSV, histograms, ROC.
- :mod:`flowcore.analysis.memorization` — memorization coefficient with null levels, rank at 90 %.
- :mod:`flowcore.analysis.checkpoints` — per-checkpoint metrics, Chamfer similarity, distinct fractions.
- :mod:`flowcore.analysis.probing` — data-free probing: OMP on noise attractors vs orthobasis vs PCA.
- :mod:`flowcore.analysis.contraction` — σ_out / σ_in of f on N(0, I) latents (contraction at init).
"""

from flowcore.analysis.contraction import ContractionReport, ContractionSeeds, contraction_ratio, contraction_seeds

__all__ = ["contraction_ratio", "ContractionReport", "contraction_seeds", "ContractionSeeds"]
