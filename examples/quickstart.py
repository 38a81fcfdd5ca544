"""Quickstart: trajectories, attractors and their stability for one model — core only.

Runs on the demo model shipped inside flowcore (8×8 digits → k = 8), or on your own bundle:

    python examples/quickstart.py                              # the shipped demo model
    python examples/quickstart.py BUNDLE DATA.npz              # your bundle and inputs (key "x")

Needs only ``pip install flowcore[cpu]``: no torch, TensorFlow or scikit-learn.
"""

import sys

import numpy as np

import flowcore

bundle, data = flowcore.demo_paths() if len(sys.argv) < 3 else sys.argv[1:3]
lmap = flowcore.LatentMap(bundle, providers="auto")          # CUDA when present, else CPU
x = np.load(data)["x"]                                       # (N, *input_shape) float32
print(f"model: input {lmap.input_shape} -> latent {lmap.latent_shape}; providers {lmap.providers}")

# 1. iterate f = E∘D from the encoded inputs and from latent noise (the paper's stopping rule)
found = {}
for name, z0 in (("data", lmap.encode(x)), ("noise", flowcore.noise_starts(lmap.latent_shape, len(x), seed=0))):
    traj = flowcore.iterate(lmap, z0, tol=1e-6, max_steps=3000)
    s = traj.summary()
    print(f"{name:5s} starts {s['n_starts']}: converged {s['converged']}, max_steps {s['max_steps']}, "
          f"diverged {s['diverged']}; median steps {s['median_steps_converged']}")

    # 2. group the endpoints into attractors (cos > 0.99, the paper's rule); basins with standard errors
    att = flowcore.find_attractors(traj, grouping=flowcore.GroupByCosine(0.99))
    top = np.argsort(att.fractions)[::-1][:3]
    basins = ", ".join(f"{att.fractions[i]:.1%} ± {att.fraction_se[i]:.1%}" for i in top)
    print(f"      {att.n_attractors} attractors; largest basins {basins}")
    found[name] = att

# 3. are the data attractors stable fixed points? (spectral radius of the Jacobian of f < 1)
att = found["data"]
stab = flowcore.stability(lmap, att.representatives)
labels = stab.labels()
print(f"stability of the {att.n_attractors} data attractors: {labels.count('stable')} stable "
      f"(spectral radius < 1), {len(labels) - labels.count('stable')} not")

# 4. what the attractors look like: decode them (one image per attractor)
images = lmap.decode(att.representatives)                    # (K, *input_shape)
print(f"decoded attractors: {images.shape}, pixel range [{images.min():.2f}, {images.max():.2f}]")
