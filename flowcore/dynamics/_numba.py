"""Numba settings shared by the kernels, and a lazy ``njit`` (numba is not imported at import).

``CACHE`` (env ``FLOWCORE_NUMBA_CACHE``, default on) is passed to ``numba.njit(cache=CACHE)`` so
kernels compile once per machine. ``@njit`` returns a :class:`LazyKernel`: numba is imported and
the kernel compiled (or loaded from the cache) on its first call, so ``import flowcore`` stays
cheap. ``NUMBA_DISABLE_JIT=1`` is honoured by numba itself (the plain Python body then runs).
Each kernel has a vectorised NumPy ``*_ref`` beside it; ``tests/test_kernels.py`` compares the
two, and ``make test`` runs those tests once more with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Callable

__all__ = ["CACHE", "LazyKernel", "njit"]

CACHE = os.environ.get("FLOWCORE_NUMBA_CACHE", "1") not in ("0", "false", "no")

_LOCK = threading.Lock()


class LazyKernel:
    """A kernel compiled with ``numba.njit`` on its first call.

    Parameters
    ----------
    fn : callable
        The plain Python kernel (kept as ``py_func``).
    options : dict
        Keyword options for ``numba.njit`` (``cache``, ``nogil``, …).

    Notes
    -----
    Kernels call helper kernels by their module-global names; before the first compilation every
    ``LazyKernel`` among the module's globals is replaced there by its numba dispatcher, so
    numba sees dispatchers, never this wrapper.
    """

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = fn
        self._options = options
        self._dispatcher: Callable[..., Any] | None = None
        functools.update_wrapper(self, fn)

    def dispatcher(self) -> Callable[..., Any]:
        """The numba dispatcher (created once; numba imported here, not at flowcore import)."""
        if self._dispatcher is None:
            with _LOCK:
                if self._dispatcher is None:
                    import numba  # lazy: import cost (~0.15 s), paid by the first kernel call only

                    self._make(numba)
        return self._dispatcher

    def _make(self, numba_module: Any) -> Callable[..., Any]:
        """Create the dispatcher, then swap the lazy kernels in this module's globals for theirs."""
        if self._dispatcher is None:
            self._dispatcher = numba_module.njit(**self._options)(self.py_func)
            module_globals = self.py_func.__globals__
            for name, value in list(module_globals.items()):
                if isinstance(value, LazyKernel):
                    module_globals[name] = value._make(numba_module)
        return self._dispatcher

    def __call__(self, *args: Any) -> Any:
        return (self._dispatcher or self.dispatcher())(*args)

    def __repr__(self) -> str:
        state = "compiled" if self._dispatcher is not None else "not yet compiled"
        return f"<LazyKernel {self.__module__}.{self.__name__} ({state})>"


def njit(fn: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Lazy ``numba.njit`` with flowcore's defaults (``cache=CACHE``, ``nogil=True``).

    Parameters
    ----------
    fn : callable, optional
        The kernel; without it, returns a decorator taking the kernel.
    **kwargs
        Options for ``numba.njit``.

    Returns
    -------
    LazyKernel
        Callable like the compiled kernel; compiles on first call.
    """
    kwargs.setdefault("cache", CACHE)
    kwargs.setdefault("nogil", True)
    if fn is None:
        return lambda f: LazyKernel(f, dict(kwargs))
    return LazyKernel(fn, dict(kwargs))
