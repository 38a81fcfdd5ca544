"""The command line's declared ranges, abbreviations, typo hints, exit codes and loader messages.

Rule under test (``flowcore --help`` epilog, ``flowcore.cli._args``): a flag VALUE of the wrong type
or outside its declared range is a usage error, exit 2, refused before any file is read (so the
bundle paths below need not exist: a missing bundle would be exit 3). What the command reads
(bundles, data files, the content of ``--starts``) is bad input, exit 3.
"""

import argparse
import dataclasses
import json
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli import app
from flowcore.cli._args import FORCE_HELP, RANGES, RESUME_HELP, FloatRange, IntRange, walk
from flowcore.cli._guard import framework_logs
from flowcore.cli.app import build_parser, main
from flowcore.errors import DataError
from flowcore.io import load_array, load_npz, save_npz

from _graphs import contraction_to, two_attractors
from _cli import one_line, run

B = "no_such_bundle"  # never read: the parser refuses first




@pytest.fixture
def bundle(tmp_path):
    return FlowBundle.write(tmp_path / "b", *two_attractors(np.array([2.0, 1.0]), np.array([-1.0, -3.0]),
                                                            np.array([1.0, 0.0])))


# ------------------------------------------------------------------------------ the parser itself
def test_every_parser_is_strict_and_every_number_declared():
    parsers = walk(build_parser())
    assert len(parsers) >= 16  # flowcore, 11 commands + ood's 3 sub-commands
    kinds = set(map(id, RANGES.values()))
    for p in parsers:
        assert p.allow_abbrev is False, p.prog
        for action in p._actions:
            assert action.type not in (int, float), f"{p.prog} {action.option_strings}: bare type={action.type}"
            if isinstance(action.type, (FloatRange, IntRange)):
                flag = action.option_strings[0]
                assert id(action.type) in kinds and RANGES[flag] is action.type, f"{p.prog} {flag}"


def test_force_and_resume_declared():
    by_prog = {p.prog: p for p in walk(build_parser())}
    writers = ["trajectories", "attractors", "stability", "field", "memorization", "dynamics", "probe",
               "ood fit", "ood score", "ood eval", "demo", "contraction"]
    for name in writers:
        action = by_prog[f"flowcore {name}"]._option_string_actions["--force"]
        assert action.help == FORCE_HELP and action.default is False
    export_force = by_prog["flowcore export"]._option_string_actions["--force"].help
    assert export_force.startswith("replace an existing bundle at --out")
    for name in ("trajectories", "attractors", "ood fit"):
        assert by_prog[f"flowcore {name}"]._option_string_actions["--resume"].help == RESUME_HELP
    args = build_parser().parse_args(["trajectories", B, "--noise", "3", "--force", "--resume"])
    assert args.force is True and args.resume is True


def test_help_epilog_states_exit_codes(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for needle in ("exit codes:", "2    usage", "3    bad input", "4    runtime", "130", "FLOWCORE_DEBUG=1"):
        assert needle in text
    assert "outside its declared range" in text


def test_good_values_and_edges_parse():
    p = build_parser()
    a = p.parse_args(["trajectories", B, "--noise", "7", "--tol", "1e-3", "--seed", "0", "--max-steps", "1",
                      "--threads", "0", "--batch-size", "1", "--norm-limit", "5"])
    assert (a.noise, a.tol, a.seed, a.max_steps, a.threads, a.batch_size) == (7, 1e-3, 0, 1, 0, 1)
    assert p.parse_args(["attractors", B, "--noise", "3", "--threshold", "-1"]).threshold == -1.0
    assert p.parse_args(["attractors", B, "--noise", "3", "--metric", "euclidean", "--threshold", "0"]).threshold == 0
    assert p.parse_args(["stability", "d", "--h", "1"]).h == 1.0
    assert p.parse_args(["field", B, "--out", "o", "--n", "2", "--lim=1e6"]).lim == 1e6


BAD_VALUES = [
    (["trajectories", B, "--noise", "3"], "--tol", ["nan", "inf", "-inf", "0", "-1e-3", "abc", ""]),
    (["trajectories", B, "--noise", "3"], "--max-steps", ["0", "-1", "1.5", "1e3", str(2**31)]),
    (["trajectories", B, "--noise", "3"], "--seed", ["-1", "1.5", str(2**63)]),
    (["trajectories", B], "--noise", ["0", "-1", "100000000000000000000", "abc"]),
    (["trajectories", B, "--noise", "3"], "--batch-size", ["0", "-5"]),
    (["trajectories", B, "--noise", "3"], "--norm-limit", ["0", "nan", "-1"]),
    (["trajectories", B, "--noise", "3"], "--record-every", ["0"]),
    (["trajectories", B, "--noise", "3"], "--threads", ["-1", "100000"]),
    (["attractors", B, "--noise", "3"], "--threshold", ["1", "1.5", "-1.01", "nan"]),
    (["attractors", B, "--noise", "3", "--metric", "euclidean"], "--threshold", ["-1", "inf"]),
    (["stability", "d"], "--h", ["0", "-1e-3", "nan", "2"]),
    (["field", B, "--out", "o"], "--lim", ["nan", "0", "-inf", "1e300"]),
    (["field", B, "--out", "o"], "--n", ["1", "100000"]),
    (["memorization", B, "--train", "a", "--test", "b", "--out", "o"], "--n-starts", ["-1", "0"]),
    (["memorization", B, "--train", "a", "--test", "b", "--out", "o"], "--threshold", ["1.5"]),
    (["dynamics", B, "--train", "a", "--test", "b", "--out", "o"], "--n-starts", ["0"]),
    (["probe", B, "--heldout", "a", "--train", "a", "--out", "o"], "--n-noise", ["0"]),
    (["ood", "fit", B, "--id", "a", "--out", "o"], "--contamination", ["0", "1", "nan", "-0.1"]),
    (["ood", "fit", B, "--id", "a", "--out", "o"], "--n-noise", ["0"]),
    (["ood", "fit", B, "--id", "a", "--out", "o"], "--batch-size", ["0"]),
    (["ood", "fit", B, "--id", "a", "--out", "o"], "--seed", ["-1"]),
    (["ood", "fit", B, "--id", "a", "--out", "o"], "--max-steps", ["0"]),
    (["export", "--out", "o"], "--opset", ["3", "x"]),
    (["export", "--out", "o"], "--rtol", ["0", "nan"]),
    (["demo", "--out", "o"], "--noise", ["0", "-3"]),
    (["demo", "--out", "o"], "--seed", ["-1"]),
]


@pytest.mark.parametrize("prefix,flag,values", BAD_VALUES, ids=[f"{p[0]}{f}" for p, f, _ in BAD_VALUES])
def test_declared_ranges_refuse_bad_values(prefix, flag, values, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for v in values:
        code, out, err = run([*prefix, f"{flag}={v}"], capsys)
        line = one_line(code, err, 2)
        assert line.startswith(f"error: {flag}: expected ") and "got" in line, line
        assert out == ""
    assert sorted(os.listdir(tmp_path)) == []  # refused before anything was written


def test_message_names_what_was_got_and_expected(capsys):
    line = one_line(*run(["trajectories", B, "--noise", "3", "--tol", "nan"], capsys)[::2], 2)
    assert line == "error: --tol: expected a finite number > 0, got 'nan'"
    line = one_line(*run(["trajectories", B, "--noise", "3", "--seed", "-1"], capsys)[::2], 2)
    assert line == f"error: --seed: expected an integer in [0, {2**63 - 1}], got '-1'"
    line = one_line(*run(["attractors", B, "--noise", "3", "--threshold", "1"], capsys)[::2], 2)
    assert line == "error: --threshold: expected a number in [-1, 1) for --metric cosine, got 1"


def test_field_lim_nan_writes_nothing(bundle, tmp_path, capsys):
    code, _, err = run(["field", str(bundle.path), "--lim", "nan", "--out", str(tmp_path / "f")], capsys)
    one_line(code, err, 2)
    assert not (tmp_path / "f").exists()


def test_abbreviations_refused(capsys):
    for argv, typo, full in [(["trajectories", B, "--noise", "3", "--max-step", "1"], "--max-step", "--max-steps"),
                             (["attractors", B, "--noise", "3", "--thresh", "0.9"], "--thresh", "--threshold"),
                             (["ood", "fit", B, "--id", "a", "--out", "o", "--contam", "0.1"], "--contam",
                              "--contamination"),
                             (["export", "--out", "o", "--autoenc", "a.pt2"], "--autoenc", "--autoencoder")]:
        line = one_line(*run(argv, capsys)[::2], 2)
        assert line == f"error: unrecognized argument {typo}; did you mean {full}?", line


def test_unknown_flag_names_the_closest(capsys):
    # named even though the required --noise/--data is missing (argparse alone says "one of … is required")
    line = one_line(*run(["trajectories", B, "--nosie", "5"], capsys)[::2], 2)
    assert line == "error: unrecognized argument --nosie; did you mean --noise?"
    line = one_line(*run(["ood", "fit", B, "--id", "a", "--out", "o", "--contaminaton=0.1"], capsys)[::2], 2)
    assert "did you mean --contamination?" in line
    line = one_line(*run(["trajectories", B, "--noise", "5", "--zzzzzz"], capsys)[::2], 2)
    assert line == "error: unrecognized argument --zzzzzz"
    line = one_line(*run(["attractors", B, "--noise", "3", "--metric", "cosin"], capsys)[::2], 2)
    assert line.endswith("did you mean cosine?")


def test_negative_values_are_values_not_flags(capsys):
    args = build_parser().parse_args(["attractors", B, "--noise", "3", "--threshold", "-0.5"])
    assert args.threshold == -0.5
    for v in ("-1e-3", "-inf", "-nan"):
        line = one_line(*run(["trajectories", B, "--noise", "3", "--tol", v], capsys)[::2], 2)
        assert line == f"error: --tol: expected a finite number > 0, got '{v}'"


def test_unknown_command_is_named_before_any_flag(capsys):
    # a close typo: the command is named with its closest match, even though its flags follow
    for argv in (["trajectory", B, "--noise", "5"], ["trajectory", B], ["trajectory", "--noise", "5", B]):
        line = one_line(*run(argv, capsys)[::2], 2)
        assert line == "error: unknown command 'trajectory' (did you mean 'trajectories'?)", line
    line = one_line(*run(["atractors", B, "--nosie", "5", "--max-step", "3"], capsys)[::2], 2)
    assert line == "error: unknown command 'atractors' (did you mean 'attractors'?)"
    # a far typo: no guess, the known commands are listed
    line = one_line(*run(["zzz", B, "--noise", "5"], capsys)[::2], 2)
    assert line == f"error: unknown command 'zzz' (commands: {', '.join(app.COMMANDS)})"
    # a command group names its sub-commands the same way
    line = one_line(*run(["ood", "fti", B, "--id", "a"], capsys)[::2], 2)
    assert line == "error: unknown command 'ood fti' (did you mean 'ood fit'?)"
    line = one_line(*run(["ood", "nothing-like-it", B], capsys)[::2], 2)
    assert line == "error: unknown command 'ood nothing-like-it' (commands: ood fit, ood score, ood eval)"
    # a known command with an unknown flag still names the flag; flags of flowcore itself still work
    line = one_line(*run(["trajectories", B, "--nosie", "5"], capsys)[::2], 2)
    assert line == "error: unrecognized argument --nosie; did you mean --noise?"
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("flowcore ")


def test_every_argument_has_help_with_its_default():
    # every action of every (sub-)parser but -h: a non-empty help; every optional flag that is not
    # required states its default (or when it is required), so --help and docs/cli.md answer "what if I omit it?"
    missing, no_default = [], []
    for p in walk(build_parser()):
        in_required_group = {id(a) for g in p._mutually_exclusive_groups if g.required for a in g._group_actions}
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = f"{p.prog} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(name)
            elif (action.option_strings and not action.required and id(action) not in in_required_group
                  and not isinstance(action, argparse._VersionAction)
                  and "default" not in action.help and "required" not in action.help):
                no_default.append(name)
    assert not missing, f"arguments without help: {missing}"
    assert not no_default, f"optional flags whose help does not state the default: {no_default}"


def test_one_table_builds_the_parser_and_dispatches(capsys, monkeypatch):
    from flowcore.cli._parser import Command

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(app.COMMANDS)
    assert {c.dest: c.help for c in sub._choices_actions} == {n: c.help for n, c in app.COMMANDS.items()}

    def add(p, common):
        p.add_argument("--name", default="world", help="who to greet (default world)")
        common(p)

    def hello(args, out, emit):
        emit(out, {"hello": args.name}, args.json, f"hello {args.name}")
        return 0

    # adding a command is one entry: parser, --help and dispatch all see it
    monkeypatch.setitem(app.COMMANDS, "hello", Command("greet someone", add, hello))
    assert run(["hello", "--name", "flow"], capsys)[:2] == (0, "hello flow\n")
    assert json.loads(run(["hello", "--json"], capsys)[1]) == {"hello": "world"}
    assert main(["--help"]) == 0 and "greet someone" in capsys.readouterr().out
    line = one_line(*run(["helo"], capsys)[::2], 2)
    assert line == "error: unknown command 'helo' (did you mean 'hello'?)"


def test_progress_flag_on_every_command_that_iterates():
    by_prog = {p.prog: p for p in walk(build_parser())}
    for name in ("trajectories", "attractors", "demo", "field", "ood fit", "ood score", "ood eval"):
        p = by_prog[f"flowcore {name}"]
        assert isinstance(p._option_string_actions["--no-progress"], argparse.BooleanOptionalAction), name
    p = build_parser()
    assert p.parse_args(["trajectories", B, "--noise", "3"]).progress is None
    assert p.parse_args(["trajectories", B, "--noise", "3", "--progress"]).progress is True
    assert p.parse_args(["trajectories", B, "--noise", "3", "--no-progress"]).progress is False


# ------------------------------------------------------------------------------------ main()
def _replace_run(monkeypatch, name, run_):
    monkeypatch.setitem(app.COMMANDS, name, dataclasses.replace(app.COMMANDS[name], run=run_))


def test_internal_error_is_one_line_and_debug_reraises(capsys, monkeypatch):
    def broken(args, out, emit):
        raise KeyError("params")

    _replace_run(monkeypatch, "info", broken)
    monkeypatch.delenv("FLOWCORE_DEBUG", raising=False)
    line = one_line(*run(["info", B], capsys)[::2], 4)
    assert line == "error: internal error: KeyError: 'params' (please report)"
    monkeypatch.setenv("FLOWCORE_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["info", B])


@pytest.mark.parametrize("exc,code,text", [
    (KeyboardInterrupt(), 130, "error: interrupted"),
    (MemoryError(), 4, "error: out of memory; use fewer starts or a smaller --batch-size"),
    (PermissionError(13, "Permission denied", "/ro/out"), 3, "error: /ro/out: Permission denied"),
    (OSError(5, "Input/output error", "/disk/x"), 4, "error: /disk/x: Input/output error"),
])
def test_exit_codes_by_class(exc, code, text, capsys, monkeypatch):
    def raising(args, out, emit):
        raise exc

    _replace_run(monkeypatch, "info", raising)
    monkeypatch.setenv("FLOWCORE_DEBUG", "1")  # only internal errors re-raise
    assert one_line(*run(["info", B], capsys)[::2], code) == text


def test_subprocess_usage_error_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowcore", "trajectories", str(tmp_path / "b"), "--noise", "3",
                           "--max-step", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: unrecognized argument --max-step; did you mean --max-steps?"


def test_framework_logs_held_then_dropped_or_shown(capsys):
    import io

    lg = logging.getLogger("torch.onnx")
    before = (lg.level, lg.propagate, list(lg.handlers), os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
    err = io.StringIO()
    with pytest.raises(DataError):
        with framework_logs(err, quiet=False):
            assert os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("2", before[3])
            lg.warning("exporting with dynamo")
            raise DataError("bad model")
    assert err.getvalue() == ""  # the error path: only main's one line will be written
    absl = logging.getLogger("absl")
    absl_level = absl.level
    absl.setLevel(logging.WARNING)  # as absl sets it; another test may have imported it or not
    try:
        with framework_logs(err, quiet=False):
            absl.warning("absl says hi")
    finally:
        absl.setLevel(absl_level)
    assert err.getvalue() == "absl: absl says hi\n"
    err = io.StringIO()
    with framework_logs(err, quiet=True):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        lg.warning("hidden")
    assert err.getvalue() == ""
    assert (lg.level, lg.propagate, list(lg.handlers), os.environ.get("TF_CPP_MIN_LOG_LEVEL")) == before


def test_framework_logs_hold_even_handlers_installed_during_the_run():
    # a framework may install its own stderr handler when it is imported, i.e. during the export (torch does)
    import io

    theirs, err = io.StringIO(), io.StringIO()
    parent, child = logging.getLogger("tf2onnx"), logging.getLogger("tf2onnx.flowcore_test")
    saved = (parent.handlers[:], parent.propagate, parent.level)
    try:
        with pytest.raises(DataError):
            with framework_logs(err, quiet=False):
                parent.handlers, parent.propagate = [logging.StreamHandler(theirs)], False
                parent.setLevel(logging.WARNING)
                child.warning("Ran into the following error\nTraceback (most recent call last): …")
                raise DataError("enc.onnx is not a loadable model")
        assert theirs.getvalue() == "" and err.getvalue() == ""
        child.warning("after the run")
        assert theirs.getvalue() == "after the run\n"  # logging is back to normal afterwards
    finally:
        parent.handlers, parent.propagate = saved[:2]
        parent.setLevel(saved[2])


# ------------------------------------------------------------------------------ data checks
def _no_unpickle_advice(text):
    assert "pickle.load" not in text and "allow_pickle" not in text and "pickled data" not in text, text


class _Payload:
    """Unpickling this creates a marker file: proof that nothing was unpickled."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_loader_messages_never_advise_unpickling(tmp_path):
    (tmp_path / "text.npz").write_text("hello, I am text\n")
    line = str(pytest.raises(DataError, load_array, tmp_path / "text.npz").value)
    assert line == f"{tmp_path / 'text.npz'} is not a NumPy .npz archive (it starts with the text 'hello, I am ')"
    (tmp_path / "text.npy").write_text("hello\n")
    assert "is not a NumPy .npy file" in str(pytest.raises(DataError, load_array, tmp_path / "text.npy").value)
    marker = tmp_path / "UNPICKLED"
    _Payload.marker = marker
    (tmp_path / "pk.npz").write_bytes(pickle.dumps([_Payload()]))
    obj = np.empty(2, dtype=object)
    obj[0] = _Payload()
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    np.savez(tmp_path / "obj.npz", x=np.zeros(3), y=obj)
    (tmp_path / "empty.npz").write_bytes(b"")
    msgs = {}
    for name in ("text.npz", "text.npy", "pk.npz", "obj.npy", "obj.npz", "empty.npz"):
        with pytest.raises(DataError) as info:
            load_array(tmp_path / name)
        msgs[name] = str(info.value)
        _no_unpickle_advice(msgs[name])
        assert "\n" not in msgs[name] and name in msgs[name]
    with pytest.raises(DataError):
        load_npz(tmp_path / "obj.npz")
    assert "looks like a Python pickle, which flowcore never loads" in msgs["pk.npz"]
    assert msgs["obj.npy"].endswith("holds an object array, which flowcore never loads (it would need pickle); "
                                    "save numeric arrays")
    assert "array 'y' holds an object array, which flowcore never loads" in msgs["obj.npz"]
    assert "(it is empty)" in msgs["empty.npz"]
    assert not marker.exists()


def test_cli_data_checks(bundle, tmp_path, capsys):
    save_npz(tmp_path / "empty.npz", x=np.zeros((0, 2), np.float32))
    line = one_line(*run(["attractors", str(bundle.path), "--data", str(tmp_path / "empty.npz")], capsys)[::2], 3)
    assert "empty.npz" in line and "no starts" in line
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    line = one_line(*run(["trajectories", str(bundle.path), "--data", str(tmp_path / "text.npz")], capsys)[::2], 3)
    _no_unpickle_advice(line)
    # float64 and integer data are converted to float32, as the API does: the same trajectories
    x = np.random.default_rng(0).integers(-4, 5, size=(40, 2))
    results = []
    for i, arr in enumerate((x.astype(np.float32), x.astype(np.float64), x.astype(np.int64))):
        save_npz(tmp_path / f"x{i}.npz", x=arr)
        code, out, err = run(["trajectories", str(bundle.path), "--data", str(tmp_path / f"x{i}.npz"), "--json"],
                             capsys)
        assert code == 0, err
        s = json.loads(out)
        results.append((s["converged"], s["median_steps_converged"]))
    assert results[0] == results[1] == results[2] and results[0][0] == 40
    save_npz(tmp_path / "b.npz", x=np.ones((4, 2), bool))
    one_line(*run(["trajectories", str(bundle.path), "--data", str(tmp_path / "b.npz")], capsys)[::2], 3)


def test_field_data_with_nan_names_the_file(tmp_path, capsys):
    b = FlowBundle.write(tmp_path / "m", *contraction_to(np.zeros(3), 0.5))  # k = 3: --data sets the plane
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    x[3, 1] = np.nan
    save_npz(tmp_path / "nan.npz", x=x)
    code, _, err = run(["field", str(b.path), "--data", str(tmp_path / "nan.npz"), "--n", "4",
                        "--out", str(tmp_path / "f")], capsys)
    line = one_line(code, err, 3)
    assert "nan.npz" in line and "NaN" in line
    assert not (tmp_path / "f").exists()


def test_ood_fit_on_zero_samples_says_so(bundle):
    from flowcore.analysis.ood.detector import OODDetector

    for methods in (["recon_error"], ["trajectory", "recon_error"]):
        det = OODDetector(bundle.path, methods=methods, default="recon_error", providers="cpu")
        with pytest.raises(DataError) as info:
            det.fit(np.zeros((0, 2), np.float32))
        assert "no ID samples" in str(info.value) and "max_steps" not in str(info.value)


def test_parser_is_argparse_compatible():
    # Parser subclasses argparse.ArgumentParser, so tools built on argparse keep working
    assert isinstance(build_parser(), argparse.ArgumentParser)
