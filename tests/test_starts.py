"""Start sets (noise / data / latents) made in one place, with the same RNG calls as before the move."""

import numpy as np
import pytest

from flowcore.analysis import memorization
from flowcore.cli.app import main
from flowcore.cli.demo import demo_paths
from flowcore.dynamics.starts import (
    data_starts,
    given_latents,
    latent_starts,
    noise_starts,
    parse_start_spec,
    starts_from_sources,
    subsample_indices,
)
from flowcore.dynamics.trajectories import Trajectories
from flowcore.errors import BadInputError, DataError, ParameterError
from flowcore.io import load_array
from flowcore.runtime.latent_map import LatentMap


@pytest.fixture(scope="module")
def lmap():
    return LatentMap(demo_paths()[0], providers="cpu")


@pytest.fixture(scope="module")
def x():
    return load_array(demo_paths()[1])[:40]


@pytest.mark.parametrize("seed", [0, 7, 2**40])
def test_noise_is_the_seeded_standard_normal(seed):
    z = noise_starts((2, 3), 25, seed=seed)
    ref = np.random.default_rng(seed).standard_normal((25, 2, 3)).astype(np.float32)
    assert z.dtype == np.float32 and z.shape == (25, 2, 3)
    np.testing.assert_array_equal(z, ref)
    assert not np.array_equal(noise_starts((2, 3), 25, seed=seed + 1), z)
    assert noise_starts((4,), 0).shape == (0, 4)


def test_noise_from_a_generator_advances_it():
    g, ref = np.random.default_rng(5), np.random.default_rng(5)
    a, b = noise_starts((3,), 4, seed=g), noise_starts((3,), 4, seed=g)
    np.testing.assert_array_equal(a, ref.standard_normal((4, 3)).astype(np.float32))
    np.testing.assert_array_equal(b, ref.standard_normal((4, 3)).astype(np.float32))


@pytest.mark.parametrize("call", [
    lambda: noise_starts((3,), -1),
    lambda: noise_starts((3,), 2.5),
    lambda: noise_starts((3,), 4, seed=-1),
    lambda: noise_starts((3,), 4, seed="0"),
    lambda: subsample_indices(10, -2),
    lambda: parse_start_spec("noise:abc"),
    lambda: parse_start_spec("noise:"),
])
def test_bad_parameters_are_parameter_errors(call):
    with pytest.raises(ParameterError) as info:
        call()
    assert isinstance(info.value, BadInputError) and "\n" not in str(info.value)


def test_subsample_indices():
    ref = np.sort(np.random.default_rng(3).choice(100, 10, replace=False))
    np.testing.assert_array_equal(subsample_indices(100, 10, seed=3), ref)
    np.testing.assert_array_equal(subsample_indices(100, None, seed=3), np.arange(100))
    np.testing.assert_array_equal(subsample_indices(100, 100, seed=3), np.arange(100))
    np.testing.assert_array_equal(subsample_indices(100, 500, seed=3), np.arange(100))
    assert subsample_indices(0, 5).shape == (0,)


def test_data_and_given_latents(lmap, x):
    z = data_starts(lmap, x)
    np.testing.assert_array_equal(z, lmap.encode(x))
    assert z.dtype == np.float32 and z.shape == (len(x), *lmap.latent_shape)
    np.testing.assert_array_equal(data_starts(lmap, x.reshape(len(x), -1)), z)  # flat inputs reshaped
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="x_bad contain NaN"):
        data_starts(lmap, bad, what="x_bad")
    with pytest.raises(DataError):
        data_starts(lmap, np.ones((2, 5), np.float32))
    flat = z.reshape(len(z), -1)
    np.testing.assert_array_equal(given_latents(lmap, flat), z)
    with pytest.raises(DataError):
        given_latents(lmap, np.ones((2, 3)))


def _latent_starts_before_the_move(lmap, kind, *, x_train=None, x_test=None, n=None, seed=0):
    """The body latent_starts had in flowcore.analysis.memorization (the reference for bit-identity)."""
    rng = np.random.default_rng(seed)
    seed_rec = seed if isinstance(seed, int) else None
    if kind == "noise":
        size = 1000 if n is None else int(n)
        z0 = rng.standard_normal((size, *lmap.latent_shape)).astype(np.float32)
        return z0, {"kind": "noise", "distribution": "N(0, I) latent", "size": size, "seed": seed_rec}
    xx = np.asarray(x_train if kind == "train" else x_test)
    if n is not None and int(n) < len(xx):
        xx = xx[np.sort(rng.choice(len(xx), int(n), replace=False))]
    return lmap.encode(xx), {"kind": kind, "size": len(xx), "seed": seed_rec}


@pytest.mark.parametrize("kind,n,seed", [("noise", None, 0), ("noise", 17, 4), ("train", None, 0),
                                         ("train", 12, 2), ("test", 30, 9), ("test", 999, 1)])
def test_latent_starts_unchanged(lmap, x, kind, n, seed):
    got = latent_starts(lmap, kind, x_train=x, x_test=x[::-1], n=n, seed=seed)
    ref = _latent_starts_before_the_move(lmap, kind, x_train=x, x_test=x[::-1], n=n, seed=seed)
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[1] == ref[1]
    assert memorization.latent_starts is latent_starts  # the old import path still works


def test_latent_starts_other_kinds(lmap, x):
    z = lmap.encode(x[:3])
    got, desc = latent_starts(lmap, z)
    np.testing.assert_array_equal(got, z)
    assert desc == {"kind": "array", "size": 3, "seed": None}
    with pytest.raises(ParameterError, match="starts must be"):
        latent_starts(lmap, "uniform")
    with pytest.raises(DataError, match="needs x_train"):
        latent_starts(lmap, "train")


def test_spec_and_sources(lmap, x, tmp_path):
    assert parse_start_spec("noise:12") == ("noise", 12)
    assert parse_start_spec("a/b.npz:x") == ("file", "a/b.npz:x")
    z, desc = starts_from_sources(lmap, noise=9, seed=3)
    np.testing.assert_array_equal(z, np.random.default_rng(3).standard_normal((9, *lmap.latent_shape)).astype(np.float32))
    assert desc == {"kind": "noise", "distribution": "N(0, I) in latent space", "n": 9, "seed": 3}
    z2, desc2 = starts_from_sources(lmap, spec="noise:9", seed=3)
    np.testing.assert_array_equal(z2, z)
    assert desc2 == desc
    np.save(tmp_path / "x.npy", x)
    z, desc = starts_from_sources(lmap, spec=str(tmp_path / "x.npy"))
    np.testing.assert_array_equal(z, lmap.encode(x))
    assert desc == {"kind": "data", "file": str(tmp_path / "x.npy"), "n": len(x)}
    np.save(tmp_path / "z.npy", z)
    zl, desc = starts_from_sources(lmap, latents=str(tmp_path / "z.npy"))
    np.testing.assert_array_equal(zl, z)
    assert desc["kind"] == "latents" and desc["n"] == len(x)
    with pytest.raises(ParameterError, match="--noise must be >= 1"):
        starts_from_sources(lmap, noise=0)


def test_cli_noise_starts_are_the_seeded_draw(tmp_path, capsys):
    bundle = str(demo_paths()[0])
    code = main(["trajectories", bundle, "--starts", "noise:20", "--seed", "5", "--max-steps", "3",
                 "--out", str(tmp_path / "t"), "--quiet", "--device", "cpu"])
    capsys.readouterr()
    assert code == 0
    tr = Trajectories.load(tmp_path / "t")
    ref = np.random.default_rng(5).standard_normal((20, 8)).astype(np.float32)
    np.testing.assert_array_equal(tr.starts, ref)


# ------------------------------------------------------------------ lazy start sources
from flowcore.dynamics.sources import EncodedStarts, LatentStarts, NoiseStarts, StartSource, read_all  # noqa: E402
from flowcore.dynamics.starts import open_start_source  # noqa: E402


@pytest.mark.parametrize("shape,n,seed,chunk", [((8,), 1000, 0, 64), ((2, 3), 257, 7, 1), ((5,), 4096, 2**40, 1000),
                                                ((1,), 3, 1, 10), ((16,), 50_000, 11, 4096)])
def test_noise_chunks_equal_the_one_shot_draw(shape, n, seed, chunk):
    ref = np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)
    np.testing.assert_array_equal(ref, noise_starts(shape, n, seed=seed))
    src = NoiseStarts(shape, n, seed=seed)
    assert isinstance(src, StartSource) and len(src) == n and src.latent_shape == shape
    parts = [src.rows(lo, lo + chunk) for lo in range(0, n, chunk)]
    np.testing.assert_array_equal(np.concatenate(parts), ref)  # bit-identical, in consecutive chunks
    assert all(p.dtype == np.float32 and p.flags.c_contiguous for p in parts)
    # any chunk on its own (backwards, or skipping ahead) is the same rows of the draw
    for lo in (n // 2, 0, n - 1, n // 3):
        np.testing.assert_array_equal(src.rows(lo, lo + chunk), ref[lo : lo + chunk])
    np.testing.assert_array_equal(read_all(NoiseStarts(shape, n, seed=seed)), ref)


def test_noise_source_bounds():
    assert NoiseStarts((3,), 0).rows(0, 0).shape == (0, 3)
    for bad in (-1, 2.5):
        with pytest.raises(ParameterError):
            NoiseStarts((3,), bad)
    with pytest.raises(ParameterError, match="fewer starts") as info:
        NoiseStarts((3,), 10**20)  # bigger than int64: one line, nothing drawn
    assert "\n" not in str(info.value)


def test_memory_mapped_latents_and_data(lmap, x, tmp_path):
    z = lmap.encode(x)
    np.save(tmp_path / "z.npy", z.reshape(len(z), -1).astype(np.float64))  # flat float64: converted per chunk
    src, desc = open_start_source(lmap, latents=str(tmp_path / "z.npy"))
    assert isinstance(src, LatentStarts) and isinstance(src.array, np.memmap) and desc["n"] == len(x)
    np.testing.assert_array_equal(np.concatenate([src.rows(lo, lo + 7) for lo in range(0, len(x), 7)]), z)
    big = np.concatenate([x] * 230)  # 9200 rows: three encoder batches of 4096
    np.save(tmp_path / "x.npy", big)
    src, desc = open_start_source(lmap, data=str(tmp_path / "x.npy"))
    assert isinstance(src, EncodedStarts) and isinstance(src.x, np.memmap) and desc["kind"] == "data"
    ref = data_starts(lmap, big)
    for chunk in (1000, 4096, 333):  # chunk edges off the encoder's batch edges: still bit-identical
        got = np.concatenate([src.rows(lo, lo + chunk) for lo in range(0, len(big), chunk)])
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(src.rows(5000, 5003), ref[5000:5003])


def test_memory_mapped_files_are_checked_before_use(lmap, x, tmp_path):
    bad = x.copy()
    bad[-1, 0, 0, 0] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match="contain NaN or Inf"):
        open_start_source(lmap, data=str(tmp_path / "bad.npy"))
    np.save(tmp_path / "wrong.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(DataError, match="shape"):
        open_start_source(lmap, latents=str(tmp_path / "wrong.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        open_start_source(lmap, latents=str(tmp_path / "obj.npy"))


def test_trajectories_from_a_source_equal_those_from_the_array(lmap):
    from flowcore import IterateOptions, iterate  # noqa: PLC0415

    src = NoiseStarts(lmap.latent_shape, 700, seed=9)
    a = iterate(lmap, read_all(src), batch_size=64, max_steps=200)
    b = iterate(lmap, src, batch_size=64, max_steps=200, options=IterateOptions(chunk_size=128))
    for name in ("final", "steps", "status", "last_step_sq", "starts"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name))


def test_memory_mapped_shape_errors_name_the_files_shape(lmap, tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((6, 5), np.float32))
    with pytest.raises(DataError, match=r"have shape \(6, 5\); expected \(N, 8\)"):
        open_start_source(lmap, latents=str(tmp_path / "w.npy"))
    with pytest.raises(DataError, match=r"have shape \(6, 5\)"):
        open_start_source(lmap, data=str(tmp_path / "w.npy"))
