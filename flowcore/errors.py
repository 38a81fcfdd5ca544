"""Error and warning hierarchy.

Every error flowcore raises for a user mistake derives from :class:`FlowcoreError` and from a
builtin base, so ``except ValueError`` keeps working. The CLI maps each class to an exit code
(``exit_code``) and prints one line, ``error: <message>``, never a traceback.

Exit codes: 2 usage, 3 bad input, 4 runtime/backend.

One class per kind of mistake:

- :class:`DataError` — an array or data file of the wrong shape, dtype or content;
- :class:`ParameterError` — an option or parameter value out of range (``k=0``, an unknown
  metric name, a cosine threshold ≥ 1); what :mod:`flowcore.validation` raises;
- :class:`BundleError` — a FlowBundle; :class:`ExportError` — an adapter export;
- :class:`BackendError` — ONNX Runtime or another runtime dependency;
- :class:`NotFittedError` — an estimator used before ``fit``;
- :class:`OutputError` — an output path flowcore may not or cannot write (exit code 3);
  :class:`DiskFullError` — no space left for an output (exit code 4).

All but NotFittedError, BackendError and DiskFullError are :class:`BadInputError` (exit code 3),
so ``except BadInputError`` (and ``except ValueError``) catch them all.
"""

from __future__ import annotations

__all__ = [
    "FlowcoreError",
    "BadInputError",
    "BundleError",
    "DataError",
    "ExportError",
    "ParameterError",
    "BackendError",
    "NotFittedError",
    "OutputError",
    "DiskFullError",
    "FlowcoreWarning",
    "ProviderWarning",
    "FlowcoreDeprecationWarning",
    "ProbeDictionaryWarning",
]


class FlowcoreError(Exception):
    """Base of all flowcore errors."""

    exit_code = 4


class BadInputError(FlowcoreError, ValueError):
    """Input that flowcore cannot use (exit code 3)."""

    exit_code = 3


class BundleError(BadInputError):
    """A FlowBundle that is missing, tampered with, or whose graphs do not compose."""


class DataError(BadInputError):
    """Data (an array or a data file) of the wrong shape, dtype or content."""


class ExportError(BadInputError):
    """An adapter could not export a model, or the export disagrees with the framework."""


class ParameterError(BadInputError):
    """An option or parameter value out of range or of the wrong type (not the data it is applied to)."""


class OutputError(BadInputError):
    """An output path flowcore may not or cannot write (a file where a folder goes, a foreign
    non-empty folder without ``--force``, no write permission); see :mod:`flowcore.outputs`."""


class DiskFullError(FlowcoreError, OSError):
    """Not enough free space for an output, found before computing or on write (exit code 4)."""

    exit_code = 4


class BackendError(FlowcoreError, RuntimeError):
    """ONNX Runtime is missing, misconfigured, or failed while running a graph (exit code 4)."""

    exit_code = 4


class NotFittedError(FlowcoreError, AttributeError):
    """An estimator was used before ``fit``."""

    exit_code = 2


class FlowcoreWarning(UserWarning):
    """Base of all flowcore warnings."""


class ProviderWarning(FlowcoreWarning):
    """The execution providers in use differ from the ones asked for."""


class ProbeDictionaryWarning(FlowcoreWarning):
    """A probing dictionary has fewer atoms than an atom count asked; those rows are capped."""


class FlowcoreDeprecationWarning(FlowcoreWarning, DeprecationWarning):
    """A keyword or spelling that still works for one release; the message names its replacement."""
