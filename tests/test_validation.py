"""The declarative parameter checks and the fitted-state guard (flowcore.validation)."""

import numpy as np
import pytest

from flowcore.errors import BadInputError, NotFittedError, ParameterError
from flowcore.validation import Interval, Options, SequenceOf, check_is_fitted, validate_params


@pytest.mark.parametrize("form,good,bad", [
    (Interval(int, 1, None), [1, 2, np.int64(7), 10**12], [0, -1, 1.0, 2.5, True, "3", None, np.nan]),
    (Interval(float, 0.0, 1.0), [0, 0.0, 0.5, 1.0, np.float32(0.25), 1], [-0.1, 1.01, np.nan, "0.5", False]),
    (Interval(float, -1.0, 1.0, closed="left"), [-1.0, 0.999], [1.0, 1.5]),
    (Interval(float, 0.0, 1.0, closed="neither"), [0.5], [0.0, 1.0]),
    (Interval(float, 0.0, None, closed="right"), [0.1, 1e300], [0.0, -1.0, np.nan]),
    (Options(str, {"kth", "mean"}), ["kth", "mean"], ["max", 1, None, ["kth"]]),
    (SequenceOf(str), [["a"], ("a", "b")], [[], "ab", ["a", 1], None]),
])
def test_forms(form, good, bad):
    for v in good:
        assert form.is_satisfied_by(v), (str(form), v)
    for v in bad:
        assert not form.is_satisfied_by(v), (str(form), v)


def test_validate_params_message_and_alternatives():
    table = {"k": [Interval(int, 1, None)], "reduce": [Options(str, {"kth", "mean"})], "flag": [bool],
             "seed": [Interval(int, 0, None), None]}
    ok = {"k": 3, "reduce": "kth", "flag": np.bool_(True), "seed": None}
    validate_params(table, ok, caller="Thing")
    validate_params(table, {**ok, "seed": 4, "extra": object()}, caller="Thing")  # unconstrained names pass
    with pytest.raises(ParameterError) as info:
        validate_params(table, {**ok, "k": 0}, caller="Thing")
    msg = str(info.value)
    assert msg == "Thing: k must be an int in [1, inf), got 0"
    assert isinstance(info.value, BadInputError) and isinstance(info.value, ValueError)
    assert info.value.exit_code == 3
    with pytest.raises(ParameterError, match=r"Thing: seed must be an int in \[0, inf\) or None, got -1"):
        validate_params(table, {**ok, "seed": -1}, caller="Thing")
    with pytest.raises(ParameterError, match=r"reduce must be one of 'kth', 'mean', got 'max'"):
        validate_params(table, {**ok, "reduce": "max"}, caller="Thing")
    with pytest.raises(ParameterError, match="flag must be a bool, got 1"):
        validate_params(table, {**ok, "flag": 1}, caller="Thing")
    with pytest.raises(ParameterError, match="'k' is constrained but was not given"):
        validate_params(table, {"reduce": "kth"}, caller="Thing")


def test_bad_forms_refused():
    with pytest.raises(ParameterError):
        Interval(str, 0, 1)
    with pytest.raises(ParameterError):
        Interval(int, 0, 1, closed="open")


def test_check_is_fitted():
    class Est:
        pass

    e = Est()
    with pytest.raises(NotFittedError) as info:
        check_is_fitted(e, "bank_", method="score")
    msg = str(info.value)
    assert msg.startswith("Est.score: ") and "call fit" in msg and "\n" not in msg
    assert isinstance(info.value, AttributeError)
    e.bank_ = None
    check_is_fitted(e, "bank_", method="score")


def test_foundation_imports_only_errors():
    import ast
    import inspect

    import flowcore.validation as v

    tree = ast.parse(inspect.getsource(v))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in mods if m and m.startswith("flowcore")} == {"flowcore.errors"}
    assert not {m for m in mods if m and m.split(".")[0] in ("numpy", "numba", "onnxruntime")}
