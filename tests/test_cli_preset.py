"""``--preset``: the paper's stopping rules by name (``flowcore.STOP_RULES``); explicit flags win."""

from __future__ import annotations

import json

import pytest

import flowcore
from flowcore.cli import build_parser, main
from flowcore.cli._args import walk

BUNDLE = str(flowcore.demo_paths()[0])


def _settings(capsys, *flags: str) -> dict:
    assert main(["trajectories", BUNDLE, "--noise", "20", "--json", "--quiet", *flags]) == 0
    return json.loads(capsys.readouterr().out)["settings"]


@pytest.mark.parametrize(("flags", "tol", "max_steps"), [
    ((), 1e-6, 3000),
    (("--preset", "small"), 1e-6, 3000),
    (("--preset", "foundation"), 1e-5, 500),
    (("--preset", "foundation", "--max-steps", "7"), 1e-5, 7),
    (("--tol", "1e-3", "--preset", "foundation"), 1e-3, 500),
])
def test_preset_sets_the_stopping_rule_and_flags_override_it(capsys, flags, tol, max_steps):
    s = _settings(capsys, *flags)
    assert (s["tol"], s["max_steps"]) == (tol, max_steps)


def test_the_table_is_the_papers():
    assert flowcore.STOP_RULES == {"small": {"tol": 1e-6, "max_steps": 3000},
                                   "foundation": {"tol": 1e-5, "max_steps": 500}}


def test_every_command_with_a_stopping_rule_has_the_preset():
    for p in walk(build_parser()):
        flags = {s for a in p._actions for s in a.option_strings}
        if "--tol" in flags:
            assert "--preset" in flags, p.prog


def test_unknown_preset_is_one_usage_line(capsys):
    assert main(["trajectories", BUNDLE, "--noise", "5", "--preset", "huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "foundation" in err[0]
