"""Analyses built on trajectories and attractors (need the ``analysis`` extra only where stated).

- :mod:`flowcore.analysis.metrics` — AUROC, AUPR-In/Out, FPR95 in both named conventions.
- :mod:`flowcore.analysis.baselines` — OOD baselines: reconstruction error, latent KNN,
  latent Mahalanobis, latent norm.
- :mod:`flowcore.analysis.ood` — the trajectory detectors and the detector suite.
- :mod:`flowcore.analysis.ood_eval` — every method × every OOD set: table, CSV, histograms, ROC.
"""
