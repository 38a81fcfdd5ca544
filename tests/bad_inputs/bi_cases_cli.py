"""Command-line mistakes: typos, abbreviations, out-of-range numbers, oversized start sets."""

from __future__ import annotations

from bi_assets import BAD, USAGE, Case, case


def _usage(name: str, build, *names: str):
    @case(f"cli_{name}")
    def _(env, d):
        out = d / "out"
        return Case(argv=build(env, str(out)), code=USAGE, out=out, names=names)


def _traj(*extra: str):
    return lambda env, out: ["trajectories", str(env.bundle), "--noise", "8", *extra, "--out", out]


_usage("typo_nosie", lambda env, out: ["trajectories", str(env.bundle), "--nosie", "5", "--out", out], "--nosie", "--noise")
_usage("abbreviation_max_step", _traj("--max-step", "1"), "--max-step")
_usage("abbreviation_ood_fit_meth", lambda env, out: ["ood", "fit", str(env.bundle), "--id", str(env.data), "--meth",
                                                      "recon_error", "--out", out], "--meth")
_usage("unknown_command", lambda env, out: ["trajectory", str(env.bundle)], "trajectory")
_usage("unknown_command_with_flags", lambda env, out: ["trajectory", str(env.bundle), "--noise", "5", "--out", out],
       "unknown command 'trajectory'", "did you mean 'trajectories'?")
_usage("unknown_command_far", lambda env, out: ["zzz", str(env.bundle), "--out", out], "unknown command 'zzz'",
       "trajectories")
_usage("missing_required", lambda env, out: ["ood", "score", str(env.detector)], "--data")
_usage("seed_negative", _traj("--seed", "-1"), "--seed")
_usage("tol_nan", _traj("--tol", "nan"), "--tol")
_usage("tol_inf", _traj("--tol", "inf"), "--tol")
_usage("tol_zero", _traj("--tol", "0"), "--tol")
_usage("max_steps_zero", _traj("--max-steps", "0"), "--max-steps")
_usage("batch_size_zero", _traj("--batch-size", "0"), "--batch-size")
_usage("norm_limit_negative", _traj("--norm-limit", "-1"), "--norm-limit")
_usage("record_every_zero", _traj("--record-every", "0"), "--record-every")
_usage("threads_negative", _traj("--threads", "-2"), "--threads")
_usage("noise_zero", lambda env, out: ["trajectories", str(env.bundle), "--noise", "0", "--out", out], "--noise")
_usage("noise_1e20", lambda env, out: ["trajectories", str(env.bundle), "--noise", "100000000000000000000",
                                       "--out", out], "--noise")
_usage("noise_not_int", lambda env, out: ["attractors", str(env.bundle), "--noise", "1e3", "--out", out], "--noise")
_usage("threshold_nan", lambda env, out: ["attractors", str(env.bundle), "--noise", "8", "--threshold", "nan",
                                          "--out", out], "--threshold")
_usage("stability_h_zero", lambda env, out: ["stability", str(env.attractors), "--h", "0", "--out", out], "--h")
_usage("stability_h_nan", lambda env, out: ["stability", str(env.attractors), "--h", "nan", "--out", out], "--h")
_usage("memorization_n_starts_negative", lambda env, out: ["memorization", str(env.bundle), "--train", str(env.data),
                                                           "--test", str(env.data), "--n-starts", "-1", "--out", out],
       "--n-starts")
_usage("dynamics_n_starts_zero", lambda env, out: ["dynamics", str(env.bundle), "--train", str(env.data), "--test",
                                                   str(env.data), "--n-starts", "0", "--out", out], "--n-starts")
_usage("probe_n_noise_zero", lambda env, out: ["probe", str(env.bundle), "--heldout", str(env.data), "--train",
                                               str(env.data), "--n-noise", "0", "--out", out], "--n-noise")
_usage("field_lim_nan", lambda env, out: ["field", str(env.bundle), "--lim", "nan", "--no-figures", "--out", out], "--lim")
_usage("field_lim_negative", lambda env, out: ["field", str(env.bundle), "--lim", "-3", "--no-figures", "--out", out],
       "--lim")
_usage("field_n_one", lambda env, out: ["field", str(env.bundle), "--n", "1", "--no-figures", "--out", out], "--n")
_usage("contraction_n_one", lambda env, out: ["contraction", str(env.bundle), "--n", "1", "--out", out], "--n")
_usage("contraction_n_nan", lambda env, out: ["contraction", str(env.bundle), "--n", "nan", "--out", out], "--n")
_usage("contraction_seeds_zero", lambda env, out: ["contraction", str(env.bundle), "--seeds", "0", "--out", out],
       "--seeds")
_usage("ood_fit_contamination_out_of_range", lambda env, out: ["ood", "fit", str(env.bundle), "--id", str(env.data),
                                                               "--contamination", "1.5", "--out", out], "--contamination")
_usage("ood_fit_n_noise_negative", lambda env, out: ["ood", "fit", str(env.bundle), "--id", str(env.data),
                                                     "--bank-source", "noise", "--n-noise", "-5", "--out", out],
       "--n-noise")
_usage("demo_noise_negative", lambda env, out: ["demo", "--noise", "-1", "--out", out], "--noise")
_usage("export_rtol_nan", lambda env, out: ["export", "--encoder", "e.pt2", "--decoder", "d.pt2", "--rtol", "nan",
                                            "--out", out], "--rtol")


@case("cli_probe_atoms_not_ints")
def _(env, d):
    out = d / "out"
    return Case(argv=["probe", str(env.bundle), "--heldout", str(env.data), "--train", str(env.data), "--atoms", "a,b",
                      "--no-figures", "--out", str(out)], code=BAD, out=out, names=("--atoms",),
                note="a flag whose content the command reads itself is bad input (3), per flowcore/cli/_args.py")


@case("cli_ood_eval_bad_set_spec")
def _(env, d):
    out = d / "out"
    return Case(argv=["ood", "eval", str(env.detector), "--id", str(env.data), "--ood", "no_equals_sign",
                      "--out", str(out)], code=BAD, out=out, names=("--ood",))


@case("cli_ood_fit_unknown_method")
def _(env, d):
    out = d / "out"
    return Case(argv=["ood", "fit", str(env.bundle), "--id", str(env.data), "--methods", "recon_eror",
                      "--out", str(out)], code=BAD, out=out, names=("recon_eror",))


@case("cli_noise_1e9_refused_before_allocating")
def _(env, d):
    out = d / "out"
    return Case(argv=["trajectories", str(env.bundle), "--noise", "1000000000", "--out", str(out)], code=BAD, out=out,
                names=("--noise",), forbid=("--batch-size",), subprocess=True, rss_mb=500,
                note="10**9 starts: refused by the size check before the start array is allocated")


@case("cli_export_random_bytes_model")
def _(env, d):
    (d / "enc.pt2").write_bytes(bytes(range(256)) * 8)
    out = d / "b"
    return Case(argv=["export", "--encoder", str(d / "enc.pt2"), "--decoder", str(d / "enc.pt2"), "--example",
                      str(env.data), "--out", str(out)], code=BAD, out=out, names=("enc.pt2",))


@case("cli_resume_into_foreign_folder")
def _(env, d):
    out = d / "out"
    out.mkdir()
    (out / "my_notes.txt").write_text("mine\n")
    return Case(argv=["trajectories", str(env.bundle), "--noise", "8", "--resume", "--out", str(out)], code=BAD,
                out=out, names=("out",))

