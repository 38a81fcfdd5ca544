"""Declarative parameter checks and the fitted-state guard (foundation: imports only ``flowcore.errors``).

An estimator or strategy lists what each parameter may be in a table, the way scikit-learn's
``_parameter_constraints`` does, and checks its values with :func:`validate_params` (in ``fit``,
or in ``__post_init__`` for a frozen config)::

    _parameter_constraints = {
        "k": [Interval(int, 1, None)],
        "reduce": [Options(str, {"kth", "mean"})],
        "normalize": [bool],
        "features": [SequenceOf(str)],
        "seed": [Interval(int, 0, None), None],
    }

Each entry is a list of allowed forms; a value passes when it satisfies any of them. A form is
an :class:`Interval`, :class:`Options` or :class:`SequenceOf`, a type (``bool``, ``str``, …), or
``None`` (the value may be None). A value that satisfies none raises
:class:`flowcore.errors.ParameterError` with one line naming the caller, the parameter, what
was expected and what was got.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Iterable, Mapping

from flowcore.errors import FlowcoreDeprecationWarning, NotFittedError, ParameterError

__all__ = ["Interval", "Options", "SequenceOf", "validate_params", "check_is_fitted", "renamed_keyword"]

_ABSTRACT = {int: numbers.Integral, float: numbers.Real}
_TYPE_NAMES = {int: "an int", float: "a float", bool: "a bool", str: "a str"}


def _is_bool(value: Any) -> bool:
    return type(value).__name__ in ("bool", "bool_")  # Python and NumPy booleans


def _is_instance(value: Any, kind: type) -> bool:
    """``isinstance`` with NumPy scalars counted as their Python kind and bools kept apart from numbers."""
    if kind is bool:
        return _is_bool(value)
    if _is_bool(value):
        return False
    return isinstance(value, _ABSTRACT.get(kind, kind))


def _type_name(kind: type) -> str:
    return _TYPE_NAMES.get(kind, f"a {kind.__name__}")


class Interval:
    """A number of a given type within bounds.

    Parameters
    ----------
    kind : {int, float}
        ``int`` accepts integral numbers (NumPy ints included); ``float`` accepts any real number.
        Booleans are refused for both.
    left, right : float or None
        Bounds; None is unbounded on that side.
    closed : {"both", "left", "right", "neither"}, default "both"
        Which bounds belong to the interval.
    """

    def __init__(self, kind: type, left: float | None, right: float | None, *, closed: str = "both"):
        if kind not in (int, float):
            raise ParameterError(f"Interval: kind must be int or float, got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ParameterError(f"Interval: closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if not _is_instance(value, self.kind):
            return False
        v = float(value)
        if math.isnan(v):
            return False
        if self.left is not None and (v < self.left or (v == self.left and self.closed in ("right", "neither"))):
            return False
        if self.right is not None and (v > self.right or (v == self.right and self.closed in ("left", "neither"))):
            return False
        return True

    def __str__(self) -> str:
        lo = "-inf" if self.left is None else f"{self.left:g}"
        hi = "inf" if self.right is None else f"{self.right:g}"
        lb = "[" if self.left is not None and self.closed in ("both", "left") else "("
        rb = "]" if self.right is not None and self.closed in ("both", "right") else ")"
        return f"{_type_name(self.kind)} in {lb}{lo}, {hi}{rb}"


class Options:
    """One of a fixed set of values of a given type (e.g. ``Options(str, {"kth", "mean"})``)."""

    def __init__(self, kind: type, options: Iterable[Any]):
        self.kind, self.options = kind, frozenset(options)

    def is_satisfied_by(self, value: Any) -> bool:
        return _is_instance(value, self.kind) and value in self.options

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in sorted(self.options, key=repr))


class SequenceOf:
    """A list or tuple of at least ``min_len`` items of type ``kind`` (a bare str is refused)."""

    def __init__(self, kind: type, *, min_len: int = 1):
        self.kind, self.min_len = kind, min_len

    def is_satisfied_by(self, value: Any) -> bool:
        return (isinstance(value, (list, tuple)) and len(value) >= self.min_len
                and all(_is_instance(v, self.kind) for v in value))

    def __str__(self) -> str:
        return f"a list of at least {self.min_len} {self.kind.__name__}"


def _satisfies(value: Any, form: Any) -> bool:
    if form is None:
        return value is None
    if isinstance(form, type):
        return _is_instance(value, form)
    return form.is_satisfied_by(value)


def _describe(form: Any) -> str:
    if form is None:
        return "None"
    if isinstance(form, type):
        return _type_name(form)
    return str(form)


def validate_params(constraints: Mapping[str, list], params: Mapping[str, Any], *, caller: str) -> None:
    """Check each parameter named in ``constraints`` against its allowed forms.

    Parameters
    ----------
    constraints : mapping of str to list
        Parameter name → allowed forms (see the module docstring).
    params : mapping of str to object
        Parameter values, e.g. ``estimator.get_params()``. Names without a constraint are not checked.
    caller : str
        Named in the message, e.g. ``"LatentKNN"``.

    Raises
    ------
    ParameterError
        For the first parameter whose value satisfies none of its forms.
    """
    for name, forms in constraints.items():
        if name not in params:
            raise ParameterError(f"{caller}: parameter {name!r} is constrained but was not given")
        value = params[name]
        if not any(_satisfies(value, f) for f in forms):
            expected = " or ".join(_describe(f) for f in forms)
            raise ParameterError(f"{caller}: {name} must be {expected}, got {value!r}")


def check_is_fitted(estimator: Any, attribute: str, *, method: str) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has the learned ``attribute`` (set by ``fit``).

    The message is one line naming ``Class.method`` and saying to call ``fit`` first.
    """
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise NotFittedError(f"{name}.{method}: this {name} is not fitted yet; call fit(...) first")


def renamed_keyword(caller: str, old: str, new: str, old_value: Any, new_value: Any, default: Any,
                    *, stacklevel: int = 3) -> Any:
    """The value of a keyword renamed from ``old`` to ``new`` (the old name works for one release).

    ``old_value`` is None when the old name was not used; then ``new_value`` is returned. Otherwise a
    :class:`~flowcore.errors.FlowcoreDeprecationWarning` names the new keyword and ``old_value`` is
    returned; :class:`~flowcore.errors.ParameterError` when ``new`` was also given (not ``default``).
    ``stacklevel`` 3 points the warning at the caller of the function that calls this.
    """
    if old_value is None:
        return new_value
    warnings.warn(f"{caller}({old}=...) is deprecated; use {new}=... (the old name goes in the next release)",
                  FlowcoreDeprecationWarning, stacklevel=stacklevel)
    if new_value != default:
        raise ParameterError(f"{caller}: {old} and {new} are the same setting; pass {new} only")
    return old_value
