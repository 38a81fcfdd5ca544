"""Edge scoring: fit an OOD detector once, save it, then score new inputs with the core alone.

Fit on in-distribution data where you train (any machine), copy the detector folder to the edge
box, and score there with ``pip install flowcore[cpu]`` only (no torch, no scikit-learn):

    python examples/edge_scoring.py [OUT_DIR]                  # demo model and digits; OUT_DIR default ./detector

Scores are higher = more out-of-distribution; ``predict`` flags 1 = OOD against the detector's
threshold. The same steps on the command line: ``flowcore ood fit`` then ``flowcore ood score``.
"""

import sys
from pathlib import Path

import numpy as np

import flowcore

bundle, data = flowcore.demo_paths()
x = np.load(data)["x"]                                       # 360 clean test digits, (360, 1, 8, 8)
rng = np.random.default_rng(0)
order = rng.permutation(len(x))
x_fit, x_calib, x_new = x[order[:160]], x[order[160:260]], x[order[260:]]   # 160 fit, 100 calibrate, 100 unseen

# --- where you train: fit on in-distribution data and save (bundle copied inside, hashed)
out = Path(sys.argv[1] if len(sys.argv) > 1 else "detector")
# the threshold (flag 5 % of clean inputs) is set on held-out ID rows the bank never saw: scores of the
# fit rows themselves are optimistic, and a threshold set on them flags new clean inputs more often
detector = flowcore.OODDetector(bundle, methods=["features_knn", "recon_error"]).fit(x_fit, X_calib=x_calib)
detector.save(out)
print(f"fitted {detector.default} on {len(x_fit)} digits; threshold calibrated on {detector.calibration_}; saved to {out}/")

# --- on the edge box: load (checksums and schema verified, nothing executed) and score
edge = flowcore.OODDetector.load(out)
noise = rng.uniform(0, 1, size=(100, 1, 8, 8)).astype(np.float32)     # inputs the model never saw
for name, batch in (("unseen clean digits", x_new), ("uniform noise", noise)):
    scores = edge.decision_function(batch)                   # (N,) float, higher = more OOD
    flagged = edge.predict(batch)                            # (N,) int, 1 = OOD
    print(f"{name:20s} median score {np.median(scores):8.3f}; flagged {flagged.mean():.0%} as OOD")
