"""Small Keras models for the TensorFlow adapter tests (imports tensorflow): the digits AE and its
training recipe, the small models the tests export, and a TensorFlow reference of the iteration.

The digits AE mirrors ``tests/_models.py`` (the torch one), channels-last:

    encoder  (N, 8, 8, 1) -> Flatten -> Dense(64, tanh) -> Dense(k)                  -> (N, k)
    decoder  (N, k) -> Dense(64, tanh) -> Dense(64, sigmoid) -> Reshape((8, 8, 1))   -> (N, 8, 8, 1)

Weights are drawn from seeded initialisers and batches from a seeded ``np.random.Generator``;
no global RNG is seeded.
"""

from __future__ import annotations

import numpy as np
import keras
import tensorflow as tf

__all__ = ["digits_encoder", "digits_decoder", "train_digits_ae", "iterate_keras", "dense", "tiny_pair", "VAEEncoder",
           "DriftingDecoder", "conv_pair"]


def _dense(units: int, seed: int, activation: str | None = None, name: str | None = None) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, activation=activation, name=name,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed), bias_initializer="zeros",
    )


def digits_encoder(k: int = 8, hidden: int = 64, seed: int = 0) -> keras.Sequential:
    """(N, 8, 8, 1) float32 -> (N, k) float32 (Sequential)."""
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), _dense(hidden, seed, "tanh"), _dense(k, seed + 1)],
        name="digits_encoder",
    )


def digits_decoder(k: int = 8, hidden: int = 64, seed: int = 0) -> keras.Model:
    """(N, k) float32 -> (N, 8, 8, 1) float32 in (0, 1) (Functional)."""
    z = keras.Input((k,))
    h = _dense(hidden, seed + 2, "tanh")(z)
    h = _dense(64, seed + 3, "sigmoid")(h)
    return keras.Model(z, keras.layers.Reshape((8, 8, 1))(h), name="digits_decoder")


def train_digits_ae(
    x_train: np.ndarray,
    *,
    k: int = 8,
    hidden: int = 64,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> tuple[keras.Model, keras.Model]:
    """Train the digits MLP autoencoder with Adam (decoupled weight decay) on MSE.

    Parameters
    ----------
    x_train : ndarray of shape (n, 8, 8, 1), float32
        Training images in [0, 1].
    k : int
        Latent size.
    seed : int
        Seeds the initialisers and the batch order.

    Returns
    -------
    (encoder, decoder) : tuple of keras.Model
    """
    enc, dec = digits_encoder(k, hidden, seed), digits_decoder(k, hidden, seed)
    variables = enc.trainable_variables + dec.trainable_variables
    opt = keras.optimizers.Adam(learning_rate=lr, weight_decay=weight_decay)
    opt.build(variables)

    @tf.function(reduce_retracing=True)
    def step(xb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(dec(enc(xb, training=True), training=True) - xb))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    x = np.ascontiguousarray(x_train, dtype=np.float32)
    rng = np.random.default_rng(seed)
    n_full = len(x) // batch_size * batch_size  # fixed batch shape: one trace
    for _ in range(epochs):
        perm = rng.permutation(len(x))[:n_full].reshape(-1, batch_size)
        for idx in perm:
            step(tf.constant(x[idx]))
    return enc, dec


def iterate_keras(enc, dec, z0: np.ndarray, *, tol: float = 1e-6, max_steps: int = 3000):
    """Reference iteration z <- E(D(z)) in TensorFlow (stopping rule of flowcore.iterate).

    Returns
    -------
    z : ndarray of shape (n, k), float32
    steps : ndarray of shape (n,), int
    done : ndarray of shape (n,), bool
    """
    f = tf.function(lambda z: enc(dec(z, training=False), training=False))
    z = np.array(z0, np.float32)
    steps = np.zeros(len(z), int)
    done = np.zeros(len(z), bool)
    for t in range(1, max_steps + 1):
        active = ~done
        if not active.any():
            break
        zn = f(tf.constant(z[active])).numpy()
        d = np.sum((zn - z[active]) ** 2, axis=1)
        z[active] = zn
        steps[active] = t
        idx = np.flatnonzero(active)
        done[idx[d < tol]] = True
    return z, steps, done


# ----------------------------------------------------------------- small models
def dense(units: int, seed: int, activation: str | None = None, name: str | None = None) -> keras.layers.Dense:
    """A Dense layer with a seeded Glorot-uniform kernel."""
    return _dense(units, seed, activation, name)


def tiny_pair(seed: int = 0) -> tuple[keras.Model, keras.Model]:
    """(N, 6) -> (N, 3) -> (N, 6): Dense encoder, Dense + tanh decoder, seeded."""
    enc = keras.Sequential([keras.Input((6,)), dense(3, seed)])
    dec = keras.Sequential([keras.Input((3,)), dense(6, seed + 1, "tanh")])
    return enc, dec


class VAEEncoder(keras.Model):
    """(N, 6) -> (mean, logvar) each (N, 3), as a list or a dict."""

    def __init__(self, as_dict):
        super().__init__()
        self.body = dense(16, 0, "tanh")
        self.mean, self.logvar = dense(3, 1), dense(3, 2)
        self.as_dict = as_dict

    def call(self, x):
        h = self.body(x)
        m, lv = self.mean(h), self.logvar(h)
        return {"logvar": lv, "mean": m} if self.as_dict else [m, lv]


class DriftingDecoder(keras.Model):
    """Adds a Python-side call counter: the traced graph freezes the value seen at trace time,
    while any two eager calls differ, so ONNX and TensorFlow genuinely disagree on at least
    one of the two parity sets (random, real) that export checks."""

    def __init__(self, n=6):
        super().__init__()
        self.lin = dense(n, 3)
        self.calls = 0

    def call(self, z):
        self.calls += 1
        return self.lin(z) + float(self.calls)


def conv_pair() -> tuple[keras.Model, keras.Model]:
    """(N, 8, 8, 1) -> latent (N, 2, 2, 4) -> (N, 8, 8, 1), channels-last."""
    init = keras.initializers.GlorotUniform
    enc = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", kernel_initializer=init(0)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same", kernel_initializer=init(1)),
    ])
    dec = keras.Sequential([
        keras.Input((2, 2, 4)),
        keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", activation="relu", kernel_initializer=init(2)),
        keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="sigmoid", kernel_initializer=init(3)),
    ])
    return enc, dec
