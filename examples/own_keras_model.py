"""Your own Keras autoencoder: train (here, a few seconds on scikit-learn digits), export, analyse.

    python examples/own_keras_model.py [OUT_DIR]               # OUT_DIR default ./keras_bundle

Needs ``pip install flowcore[cpu,analysis] flowcore-tensorflow`` (TensorFlow + tf2onnx). Export
checks ONNX Runtime against TensorFlow (parity); everything after export runs without TensorFlow.
If your autoencoder is one flat ``Sequential``, ``flowcore export --autoencoder model.keras
--split-at LAYER`` cuts it into encoder and decoder at the named layer.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines (set before importing it)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import flowcore  # noqa: E402
import flowcore_tensorflow  # noqa: E402

# a small convolution-free AE on real digits (8x8 images in [0, 1]); k = 8
x = (load_digits().images / 16.0).astype(np.float32)[:, None]          # (1797, 1, 8, 8)
x_train, x_test = x[:1437], x[1437:]
keras.utils.set_random_seed(0)
encoder = keras.Sequential([keras.Input((1, 8, 8)), keras.layers.Flatten(),
                            keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(8)])
decoder = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="tanh"),
                            keras.layers.Dense(64, activation="sigmoid"), keras.layers.Reshape((1, 8, 8))])
autoencoder = keras.Sequential([encoder, decoder])
autoencoder.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
autoencoder.fit(x_train, x_train, epochs=60, batch_size=64, verbose=0)
print(f"test MSE {autoencoder.evaluate(x_test, x_test, verbose=0):.4f}")

# export: two ONNX graphs + flow.json, hashed; parity against TensorFlow on random and real inputs
out = sys.argv[1] if len(sys.argv) > 1 else "keras_bundle"
bundle = flowcore_tensorflow.export(encoder, decoder, x_train[:64], out, real_inputs=x_test)
lmap = flowcore.LatentMap(bundle)

# analyse: attractors from the training digits, and memorization against the null levels
traj = flowcore.iterate(lmap, lmap.encode(x_train), tol=1e-6, max_steps=3000)
att = flowcore.find_attractors(traj, grouping=flowcore.GroupByCosine(0.99))
print(f"{traj.summary()['converged']} of {len(traj)} converged; {att.n_attractors} attractors")
report = flowcore.memorization_report(lmap, x_train, x_test, n_starts=500)
print(f"memorization: basin-weighted {report.mem_weighted_mean:.3f}, unweighted {report.mem_mean:.3f} over "
      f"{report.n_attractors} attractors; null levels: test images {report.null['test']['mean']:.3f}, "
      f"noise {report.null['noise']['mean']:.3f}")
print(f"verdict: {report.verdict}")
