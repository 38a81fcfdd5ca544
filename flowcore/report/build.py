"""The content of one model's report: sections of text, tables and PNG figures (no HTML here).

:func:`build_report` runs the public analyses (``iterate``, ``find_attractors``, ``stability``,
``field_map``, ``memorization_report``, ``probe``, ``OODDetector`` + ``evaluate``,
``checkpoint_metrics``) and returns a :class:`Report`: an ordered list of sections, each a dict
``{"id", "title", "status" ("ok" | "absent"), "note", "text": [str], "tables": [{"caption",
"columns", "rows"}], "figures": [{"name", "caption", "png": bytes}]}``. A section whose input is
absent (no ``x_test``, no OOD sets, no checkpoints) has status ``"absent"`` and a note saying what
to pass. The verdict lines and numbers are the ones ``flowcore memorization | probe | ood`` print.
"""

from __future__ import annotations

import platform
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from flowcore._version import __version__
from flowcore.analysis.checkpoints import checkpoint_metrics
from flowcore.analysis.memorization import memorization_report
from flowcore.analysis.ood.detector import OODDetector
from flowcore.analysis.ood.evaluation import evaluate
from flowcore.analysis.probing import probe
from flowcore.bundle.subnormal import count_subnormals
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.field_map import field_map
from flowcore.dynamics.stability import stability
from flowcore.dynamics.starts import data_starts, noise_starts
from flowcore.dynamics.trajectories import iterate
from flowcore.plots import curves, decoded_grid, field_plot
from flowcore.dynamics.field import project_to_plane
from flowcore.report.figures import checkpoint_curves, ood_histograms, plane_paths, roc_plot, steps_histogram
from flowcore.runtime.latent_map import LatentMap

__all__ = ["Report", "build_report", "SECTIONS"]

#: section ids, in page order
SECTIONS = ("bundle", "trajectories", "attractors", "field", "memorization", "probing", "ood", "checkpoints", "run")


@dataclass
class Report:
    """An ordered list of section dicts (see the module docstring) plus the run facts."""

    sections: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""

    def section(self, sid: str) -> dict[str, Any]:
        return next(s for s in self.sections if s["id"] == sid)

    def to_json(self) -> dict[str, Any]:
        """The content as data: every section, figures named (their PNGs are not in the JSON)."""
        secs = [{**s, "figures": [{k: v for k, v in f.items() if k != "png"} for f in s["figures"]]}
                for s in self.sections]
        return {"title": self.title, "sections": secs}


def _section(sid: str, title: str, *, note: str = "", status: str = "ok") -> dict[str, Any]:
    return {"id": sid, "title": title, "status": status, "note": note, "text": [], "tables": [], "figures": []}


def _absent(sid: str, title: str, note: str) -> dict[str, Any]:
    return _section(sid, title, note=note, status="absent")


def _bundle(lmap: LatentMap) -> dict[str, Any]:
    s = _section("bundle", "Bundle")
    b = lmap.bundle
    info = b.summary()
    src = b.manifest.get("source") if isinstance(b.manifest.get("source"), dict) else {}
    sub = {w: count_subnormals(getattr(b, w)) for w in ("encoder", "decoder")}
    rows = [["path", str(info["path"])], ["input shape", str(tuple(info["input_shape"]))],
            ["latent shape", str(tuple(info["latent_shape"]))],
            ["framework", " ".join(str(src.get(k, "")) for k in ("framework", "version", "exporter")).strip() or "unknown"],
            ["bundle sha256", b.sha256], ["providers", ", ".join(lmap.providers)],
            ["subnormal weights", f"encoder {sub['encoder']}, decoder {sub['decoder']}"]]
    rows += [[f"{r['file']} ({r['role']})", f"{r['size']:,d} bytes, sha256 {r['sha256'][:16]}…"]
             for r in info["verified"]["files"]]
    s["tables"].append({"caption": "bundle facts", "columns": ["fact", "value"], "rows": rows})
    if sub["encoder"] or sub["decoder"]:
        s["text"].append(f"warning: {sub['encoder'] + sub['decoder']} subnormal weights (slow on some CPUs)")
    return s


def _trajectories(lmap, z_data, z_noise, tol, max_steps):
    s = _section("trajectories", "Trajectories")
    runs, rows = {}, []
    for name, z0 in (("data", z_data), ("noise N(0, I)", z_noise)):
        t = iterate(lmap, z0, tol=tol, max_steps=max_steps, progress=False)
        runs[name] = t
        c = t.counts()
        rows.append([name, len(t), c.get("converged", 0), c.get("max_steps", 0), c.get("diverged", 0),
                     float(np.median(t.steps)) if len(t) else None])
    s["tables"].append({"caption": f"stopping status per start set (tol {tol:g}, max_steps {max_steps})",
                        "columns": ["starts", "n", "converged", "max_steps", "diverged", "median steps"], "rows": rows})
    png, _ = steps_histogram({k: v.steps for k, v in runs.items()}, max_steps=max_steps)
    s["figures"].append({"name": "steps_histogram", "png": png, "caption": "steps to stop, per start set"})
    return s, runs


def _attractors(lmap, traj, n_stab: int):
    s = _section("attractors", "Attractors")
    att = find_attractors(traj)
    sm = att.summary()
    s["text"].append(f"{sm['n_attractors']} attractors from {sm['n_starts']} data starts "
                     f"({sm['n_unassigned']} unassigned); grouping: {sm['settings'].get('metric')} "
                     f"{sm['settings'].get('threshold')}, tol {sm['settings'].get('trajectory_tol')}, max_steps "
                     f"{sm['settings'].get('trajectory_max_steps')}")
    order = np.argsort(-att.counts)[:n_stab]
    st = stability(lmap, att.representatives[order]) if len(order) else None
    rows = []
    for j, i in enumerate(order):
        rows.append([int(i), int(att.counts[i]), f"{100 * sm['fractions'][i]:.1f} ± {100 * sm['fraction_se'][i]:.1f}",
                     float(st.spectral_radius[j]), float(st.spectral_norm[j]), st.labels()[j],
                     float(st.fixed_point_residual[j])])
    s["tables"].append({"caption": f"the {len(order)} largest basins (basin % ± s.e.) and their Jacobian spectra",
                        "columns": ["attractor", "basin", "basin %", "spectral radius", "spectral norm", "label",
                                    "fixed-point residual"], "rows": rows})
    return s, att


def _field(lmap, x, n, seed, tol, max_steps, n_paths: int = 12):
    s = _section("field", "Latent field")
    fm = field_map(lmap, data=x, n=n, seed=seed, progress=False)
    st = fm.settings
    s["text"].append(f"V(z) = f(z) − z on a {n}×{n} grid of the {st['plane']}; {fm.attractors_inside} of "
                     f"{fm.n_attractors} attractors and {fm.points_inside} of {len(fm.points_plane)} data latents "
                     f"inside the window")
    png, _ = field_plot(fm.grid, attractors=fm.attractors_plane, points=fm.points_plane,
                        title="V(z) = f(z) − z (dots: data latents, crosses: attractors)")
    s["figures"].append({"name": "field", "png": png,
                         "caption": f"latent field on the {st['plane']}; axes in latent units"})
    starts = data_starts(lmap, x[:: max(1, len(x) // n_paths)][:n_paths], what="--data")
    t = iterate(lmap, starts, record_every=1, max_steps=max_steps, tol=tol, progress=False)
    paths = []
    for p, ps in zip(t.path, t.path_steps):
        keep = ps >= 0
        paths.append(project_to_plane(p[keep], fm.grid.origin, fm.grid.basis))
    png, _ = plane_paths(paths, fm.attractors_plane, st["xlim"], st["ylim"], plane=st["plane"])
    s["figures"].append({"name": "trajectories_on_plane", "png": png,
                         "caption": f"{len(paths)} data trajectories (every step) projected on the same plane"})
    return s


def _memorization(lmap, x, x_test, n_starts, seed, tol, max_steps):
    if x_test is None:
        return _absent("memorization", "Memorization", "no --test data: pass held-out inputs for the null levels")
    s = _section("memorization", "Memorization")
    rep = memorization_report(lmap, x, x_test, n_starts=n_starts, seed=seed, tol=tol, max_steps=max_steps)
    j = rep.to_json()
    nt, nn = j["null_test"], j["null_noise"]
    s["verdict"] = j["verdict"]
    s["text"] += [f"verdict: {j['verdict']}",
                  f"basin-weighted mean cosine to the nearest training image {j['mem_weighted_mean']:.3f}; unweighted "
                  f"{j['mem_mean']:.3f} ± {j['mem_std']:.3f} over {j['n_attractors']} attractors; null levels: test "
                  f"{nt['mean']:.3f} ± {nt['std']:.3f}, noise {nn['mean']:.3f} ± {nn['std']:.3f}; rank at 90 % "
                  f"variance {j['rank']}; test MSE {j['test_mse']:.5g}"]
    top = np.argsort(-rep.counts)[:16]
    rows = [[int(i), int(rep.counts[i]), float(rep.mem[i]), int(rep.nearest_index[i]), bool(rep.blank[i]),
             bool(rep.mean_image[i])] for i in top]
    s["tables"].append({"caption": "per attractor (largest basins): cosine to the nearest training image",
                        "columns": ["attractor", "basin", "cosine", "nearest train index", "blank", "mean image"],
                        "rows": rows})
    if len(top):
        shape = lmap.input_shape
        png, _ = decoded_grid(rep.decoded[top].reshape(len(top), *shape),
                              np.asarray(x)[rep.nearest_index[top]].reshape(len(top), *shape), rep.mem[top],
                              title="decoded attractors (largest basins) beside their nearest training image")
        s["figures"].append({"name": "decoded_attractors", "png": png,
                             "caption": "decoded attractor | nearest training image, with the cosine"})
    return s


def _probing(lmap, x, x_test, seed, tol, max_steps, atoms):
    if x_test is None:
        return _absent("probing", "Data-free probing", "no --test data: probing reconstructs held-out inputs")
    s = _section("probing", "Data-free probing")
    with warnings.catch_warnings(record=True) as caught:  # capped rows: a "warning:" line, as `flowcore probe`
        warnings.simplefilter("always")
        rep = probe(lmap, x_test, x, atoms=atoms, seed=seed, tol=tol, max_steps=max_steps)
    s["text"] += [f"warning: {w.message}" for w in caught]
    s["text"].append(f"noise dictionary: {rep.dictionary_sizes['noise']} atoms, rank {rep.dictionary_ranks['noise']}; "
                     f"reference D(E(x)) input-space MSE {rep.reference_mse_input:.5g}")
    s["tables"].append({"caption": "input-space MSE per OMP atom count", "columns": ["basis", *map(str, rep.atoms)],
                        "rows": [[b, *map(float, rep.mse_input[b])] for b in rep.mse_input]})
    png, _ = curves(rep.atoms.astype(np.float64), {b: rep.mse_input[b] for b in rep.mse_input}, logx=True,
                    xlabel="OMP atoms (count)", ylabel="input-space MSE", title="probing: reconstruction vs atoms")
    s["figures"].append({"name": "probe_mse", "png": png, "caption": "reconstruction error vs atoms, per dictionary"})
    return s


def _ood(bundle, x, x_test, ood: Mapping[str, Any], methods, providers, seed):
    if not ood:
        return _absent("ood", "Out-of-distribution detection", "no --ood sets: pass --ood NAME=PATH to evaluate")
    s = _section("ood", "Out-of-distribution detection")
    with warnings.catch_warnings(record=True) as caught:  # e.g. in-sample threshold: shown on the page
        warnings.simplefilter("always")
        det = OODDetector(bundle, methods=methods, default="features_knn" if "features_knn" in methods else methods[0],
                          providers=providers, seed=seed).fit(x)
    s["text"] += [f"warning: {w.message}" for w in caught]
    x_id = x_test if x_test is not None else x
    rep = evaluate(det, x_id, dict(ood))
    s["text"].append(f"ID = {'--test' if x_test is not None else '--data (in-sample)'}; detector fitted on --data; "
                     f"threshold of the default method {det.default}: {det.threshold_:.4g}")
    rows = [[r.method, r.ood_set, 100 * r.auroc, 100 * r.fpr95_id_positive, 100 * r.fpr95_ood_positive]
            for r in rep.rows]
    s["tables"].append({"caption": "metrics in % (FPR95 ID+: OOD accepted at 95 % ID kept; FPR95 OOD+: ID flagged "
                                   "at 95 % OOD caught)",
                        "columns": ["method", "OOD set", "AUROC", "FPR95 ID+", "FPR95 OOD+"], "rows": rows})
    for name in rep.ood_sets:
        png, _ = ood_histograms(rep, name, det.thresholds_)
        s["figures"].append({"name": f"hist_{name}", "png": png,
                             "caption": f"scores of ID vs {name}; dashed line: the detector's threshold"})
    png, _ = roc_plot(rep)
    s["figures"].append({"name": "roc", "png": png, "caption": "ROC per OOD set, one colour per method"})
    return s


def _checkpoints(checkpoints, x, x_test, n_starts, seed, tol, max_steps, providers):
    if not checkpoints:
        return _absent("checkpoints", "Training checkpoints", "no --checkpoints: pass bundles in training order")
    if x_test is None:
        return _absent("checkpoints", "Training checkpoints", "--checkpoints needs --test data")
    s = _section("checkpoints", "Training checkpoints")
    names = [str(getattr(c, "name", c)).rstrip("/").split("/")[-1] for c in checkpoints]
    m = checkpoint_metrics([str(c) for c in checkpoints], x, x_test, n_starts=n_starts, seed=seed, tol=tol,
                           max_steps=max_steps, providers=providers, names=names)
    rows = m.rows()
    get = lambda *k: np.array([float(_dig(r, k)) for r in rows])  # noqa: E731
    cols = [("mem_mean", "memorization"), ("test_mse", "test MSE"), ("distinct_fraction", "train", "distinct train"),
            ("chamfer_noise_train", "Chamfer noise-train"), ("fpr95_id_positive", "FPR95 ID+")]
    s["tables"].append({"caption": "metrics per checkpoint", "columns": ["checkpoint"] + [c[-1] for c in cols],
                        "rows": [[n] + [float(_dig(r, c[:-1])) for c in cols] for n, r in zip(names, rows)]})
    png, _ = checkpoint_curves(names, {"memorization (cosine)": get("mem_mean"), "FPR95 ID+": get("fpr95_id_positive"),
                                       "distinct train fraction": get("distinct_fraction", "train")},
                               {"test MSE": get("test_mse")})
    s["figures"].append({"name": "checkpoints", "png": png, "caption": "metrics per checkpoint (names as ticks)"})
    return s


def _dig(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    v: Any = row
    for k in keys:
        v = v.get(k, np.nan) if isinstance(v, Mapping) else np.nan
    return v if isinstance(v, (int, float)) else np.nan


def build_report(bundle, x, *, x_test=None, ood: Mapping[str, Any] | None = None, checkpoints: Sequence = (),
                 n_noise: int = 200, n_starts: int = 300, grid: int = 32, atoms: tuple[int, ...] | None = None,
                 methods: Sequence[str] = ("trajectory", "features_knn", "recon_error"), n_stability: int = 10,
                 seed: int = 0, tol: float = 1e-6, max_steps: int = 3000, providers: str = "auto",
                 threads: int | None = None, command: str = "") -> Report:
    """Run every analysis of one model and return its :class:`Report`.

    ``x`` (N, *input_shape): training inputs (starts, field plane, OOD fit); ``x_test`` (M,
    *input_shape) held-out inputs; ``ood`` name -> (K, *input_shape); ``checkpoints`` bundles in
    training order. ``n_noise`` N(0, I) starts; ``n_starts`` data starts (subsample of ``x``).
    """
    t0 = time.perf_counter()
    lmap = LatentMap(bundle, providers=providers, intra_op_num_threads=threads)
    x = lmap.check_inputs(np.asarray(x), "--data")
    x_test = None if x_test is None else lmap.check_inputs(np.asarray(x_test), "--test")
    rng = np.random.default_rng(seed)
    xs = x if len(x) <= n_starts else x[np.sort(rng.choice(len(x), n_starts, replace=False))]
    rep = Report(title=f"flowcore report: {lmap.bundle.path}")
    rep.sections.append(_bundle(lmap))
    s, runs = _trajectories(lmap, data_starts(lmap, xs, what="--data"), noise_starts(lmap.latent_shape, n_noise,
                                                                                    seed=seed), tol, max_steps)
    rep.sections.append(s)
    rep.sections.append(_attractors(lmap, runs["data"], n_stability)[0])
    rep.sections.append(_field(lmap, xs, grid, seed, tol, max_steps))
    rep.sections.append(_memorization(lmap, x, x_test, n_starts, seed, tol, max_steps))
    rep.sections.append(_probing(lmap, xs, x_test, seed, tol, max_steps, atoms))
    rep.sections.append(_ood(bundle, x, x_test, ood or {}, methods, providers, seed))
    rep.sections.append(_checkpoints(list(checkpoints), xs, x_test, n_starts, seed, tol, max_steps, providers))
    run = _section("run", "Run")
    import onnxruntime  # noqa: PLC0415  # version only; LatentMap already imported it

    run["tables"].append({"caption": "how this page was made", "columns": ["fact", "value"], "rows": [
        ["command", command or "build_report(...)"], ["flowcore", __version__], ["onnxruntime", onnxruntime.__version__],
        ["numpy", np.__version__], ["python", platform.python_version()], ["machine", platform.platform()],
        ["wall time", f"{time.perf_counter() - t0:.1f} s"]]})
    rep.sections.append(run)
    return rep
