"""Bad data files and arrays: pickle payloads, text named .npz, dtypes, NaN/Inf, empty, wrong shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bi_assets import BAD, Case, case, pickle_npy, pickle_npz

NO_UNPICKLE = ("allow_pickle", "pickle.load", "pickled data")  # never advise unpickling an untrusted file


def _traj(env, d: Path, flag: str, path, *names: str, cmd: str = "trajectories", **kw) -> Case:
    out = d / "out"
    return Case(argv=[cmd, str(env.bundle), flag, str(path), "--out", str(out)], out=out,
                names=names or (Path(str(path).split(":")[0]).name,), **kw)


# ---------------------------------------------------------------- files that are not arrays
@case("data_text_named_npz")
def _(env, d):
    (d / "x.npz").write_text("index,value\n0,1.0\n")
    return _traj(env, d, "--data", d / "x.npz", forbid=NO_UNPICKLE)


@case("data_text_named_npy")
def _(env, d):
    (d / "x.npy").write_text("1 2 3 4\n")
    return _traj(env, d, "--data", d / "x.npy", forbid=NO_UNPICKLE)


@case("data_object_npy_live_pickle")
def _(env, d):
    marker = d / "PWNED_npy"
    pickle_npy(d / "x.npy", marker)
    return _traj(env, d, "--data", d / "x.npy", marker=marker, forbid=NO_UNPICKLE)


@case("data_object_npz_live_pickle")
def _(env, d):
    marker = d / "PWNED_npz"
    pickle_npz(d / "x.npz", marker)
    return _traj(env, d, "--data", d / "x.npz", marker=marker, forbid=NO_UNPICKLE, cmd="attractors")


@case("latents_object_npz_key_live_pickle")
def _(env, d):
    marker = d / "PWNED_key"
    pickle_npz(d / "z.npz", marker, ok=np.zeros((4, 2), np.float32))
    return _traj(env, d, "--latents", f"{d / 'z.npz'}:x", "z.npz", marker=marker, forbid=NO_UNPICKLE)


@case("ood_score_object_npy_live_pickle")
def _(env, d):
    marker = d / "PWNED_score"
    pickle_npy(d / "x.npy", marker)
    return Case(argv=["ood", "score", str(env.detector), "--data", str(d / "x.npy"), "--out", str(d / "s.csv")],
                out=d / "s.csv", names=("x.npy",), marker=marker, forbid=NO_UNPICKLE)


@case("api_load_array_live_pickle")
def _(env, d):
    from flowcore.io import load_array  # noqa: PLC0415

    marker = d / "PWNED_api"
    pickle_npz(d / "x.npz", marker)
    return Case(call=lambda: load_array(d / "x.npz"), error="DataError", code=BAD, names=("x.npz",),
                marker=marker, forbid=NO_UNPICKLE)


@case("data_missing_file")
def _(env, d):
    return _traj(env, d, "--data", d / "absent.npy")


@case("data_npz_missing_key")
def _(env, d):
    np.savez(d / "x.npz", a=np.zeros((4, 4), np.float32))
    return _traj(env, d, "--data", f"{d / 'x.npz'}:nokey", "nokey")


@case("data_is_a_folder")
def _(env, d):
    (d / "x.npy").mkdir()
    return _traj(env, d, "--data", d / "x.npy")


# ---------------------------------------------------------------- arrays of the wrong kind
def _data_case(name: str, array, *, cmd: str = "trajectories", names=("x.npy",), code: int = BAD, flag="--data"):
    @case(f"data_{name}")
    def _(env, d):
        np.save(d / "x.npy", np.asarray(array))
        c = _traj(env, d, flag, d / "x.npy", *names, cmd=cmd, code=code)
        if code == 0:
            c.note = "accepted: numeric data are converted to float32; N = 1 is a valid start set"
        return c


_data_case("float64_accepted", np.random.default_rng(0).uniform(size=(8, 4)), code=0)
_data_case("n1_accepted", np.full((1, 4), 0.5, np.float32), code=0, cmd="attractors")
_data_case("int64_accepted", np.ones((8, 4), np.int64), code=0)  # numeric: converted to float32
_data_case("bool", np.ones((8, 4), bool))
_data_case("complex", np.ones((8, 4), np.complex64))
_data_case("strings", np.array([["a"] * 4] * 8))
_data_case("nan", np.array([[0.1, np.nan, 0.2, 0.3]] * 8, np.float32), cmd="attractors")
_data_case("inf", np.array([[0.1, np.inf, 0.2, 0.3]] * 8, np.float32))
_data_case("empty_rows", np.zeros((0, 4), np.float32), cmd="attractors")
_data_case("wrong_width", np.zeros((8, 5), np.float32))
_data_case("rank1", np.zeros(4, np.float32))
_data_case("scalar", np.float32(1.0))
_data_case("latents_wrong_width", np.zeros((8, 3), np.float32), flag="--latents")
_data_case("latents_nan", np.full((8, 2), np.nan, np.float32), flag="--latents")


@case("field_data_nan")
def _(env, d):
    x = np.random.default_rng(0).uniform(size=(16, 4)).astype(np.float32)
    x[3, 1] = np.nan
    np.save(d / "x.npy", x)
    out = d / "out"
    return Case(argv=["field", str(env.bundle3), "--data", str(d / "x.npy"), "--n", "4", "--no-figures",
                      "--out", str(out)], out=out, names=("x.npy",))


@case("ood_fit_zero_samples")
def _(env, d):
    np.save(d / "x.npy", np.zeros((0, 4), np.float32))
    out = d / "det"
    return Case(argv=["ood", "fit", str(env.bundle), "--id", str(d / "x.npy"), "--methods", "recon_error,trajectory",
                      "--default", "recon_error", "--out", str(out)], out=out, names=("x.npy",),
                forbid=("raise max_steps", "max_steps or tol"))


@case("ood_score_wrong_shape")
def _(env, d):
    np.save(d / "x.npy", np.zeros((8, 7), np.float32))
    return Case(argv=["ood", "score", str(env.detector), "--data", str(d / "x.npy"), "--out", str(d / "s.csv")],
                out=d / "s.csv", names=("x.npy",))


@case("ood_eval_inf")
def _(env, d):
    np.save(d / "x.npy", np.full((8, 4), np.inf, np.float32))
    out = d / "ev"
    return Case(argv=["ood", "eval", str(env.detector), "--id", str(env.data), "--ood", f"bad={d / 'x.npy'}",
                      "--out", str(out)], out=out, names=("x.npy",))


# ---------------------------------------------------------------- the Python API
def _api(call, error: str, *names: str, code: int = BAD, **kw) -> Case:
    return Case(call=call, error=error, code=code, names=names, **kw)


def _lmap(env):
    from flowcore.runtime.latent_map import LatentMap  # noqa: PLC0415

    return LatentMap(env.bundle, providers="cpu")


@case("api_encode_object_array")
def _(env, d):
    return _api(lambda: _lmap(env).encode(np.array([[object()] * 4], dtype=object)), "DataError", "object")


@case("api_encode_wrong_shape")
def _(env, d):
    return _api(lambda: _lmap(env).encode(np.zeros((3, 2, 2, 2), np.float32)), "DataError", "shape")


@case("api_iterate_tol_nan")
def _(env, d):
    from flowcore.dynamics.trajectories import iterate  # noqa: PLC0415

    return _api(lambda: iterate(_lmap(env), np.zeros((4, 2), np.float32), tol=float("nan")), "ParameterError", "tol")


@case("api_iterate_inf_starts")
def _(env, d):
    from flowcore.dynamics.trajectories import iterate  # noqa: PLC0415

    return _api(lambda: iterate(_lmap(env), np.full((4, 2), np.inf, np.float32)), "DataError", "starts")


@case("api_find_attractors_bad_threshold")
def _(env, d):
    from flowcore.dynamics.attractors import find_attractors  # noqa: PLC0415
    from flowcore.dynamics.trajectories import Trajectories  # noqa: PLC0415

    return _api(lambda: find_attractors(Trajectories.load(env.attractors), metric="cosine", threshold=1.5),
                "ParameterError", "threshold")


@case("api_detector_fit_empty")
def _(env, d):
    from flowcore.analysis.ood.detector import OODDetector  # noqa: PLC0415

    det = OODDetector(env.bundle, methods=("recon_error", "trajectory"), default="recon_error", providers="cpu")
    return _api(lambda: det.fit(np.zeros((0, 4), np.float32)), "DataError", "ID data",
                forbid=("raise max_steps", "max_steps or tol"))


@case("api_detector_unfitted")
def _(env, d):
    from flowcore.analysis.ood.detector import OODDetector  # noqa: PLC0415

    det = OODDetector(env.bundle, methods=("recon_error",), default="recon_error")
    return _api(lambda: det.decision_function(np.zeros((2, 4), np.float32)), "NotFittedError", "fit", code=2)


@case("api_detector_decision_nan")
def _(env, d):
    from flowcore.analysis.ood.detector import OODDetector  # noqa: PLC0415

    return _api(lambda: OODDetector.load(env.detector, providers="cpu").decision_function(
        np.full((2, 4), np.nan, np.float32)), "DataError", "NaN")


@case("api_result_load_object_npz_live_pickle")
def _(env, d):
    import shutil  # noqa: PLC0415

    from flowcore.dynamics.trajectories import Trajectories  # noqa: PLC0415

    folder = d / "att"
    shutil.copytree(env.attractors, folder)
    marker = d / "PWNED_result"
    arrays = dict(np.load(folder / "trajectories.npz"))
    np.savez(folder / "trajectories.npz", **{**arrays, "final": np.array([__import__("bi_assets").Payload(marker)],
                                                                          dtype=object)})
    return _api(lambda: Trajectories.load(folder), "DataError", "trajectories.npz", marker=marker,
                forbid=NO_UNPICKLE)


@case("api_result_load_wrong_kind")
def _(env, d):
    import shutil  # noqa: PLC0415

    from flowcore.dynamics.stability import Stability  # noqa: PLC0415

    shutil.copytree(env.attractors, d / "att")
    return _api(lambda: Stability.load(d / "att"), "DataError", "stability")


@case("api_attractors_load_truncated_npz")
def _(env, d):
    import shutil  # noqa: PLC0415

    from flowcore.dynamics.attractors import Attractors  # noqa: PLC0415

    shutil.copytree(env.attractors, d / "att")
    f = d / "att" / "attractors.npz"
    f.write_bytes(f.read_bytes()[:100])
    return _api(lambda: Attractors.load(d / "att"), "DataError", "attractors.npz", forbid=NO_UNPICKLE)


@case("api_fieldgrid_load_missing_json")
def _(env, d):
    from flowcore.dynamics.field import FieldGrid  # noqa: PLC0415

    (d / "grid").mkdir()
    np.savez(d / "grid" / "field_grid.npz", xs=np.zeros(3))
    return _api(lambda: FieldGrid.load(d / "grid"), "DataError", "field_grid.json")
