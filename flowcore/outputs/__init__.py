"""The output-folder policy: what a flowcore command may write, checked before it computes.

Every command that writes files goes through this module, so the rules are the same everywhere:

1. **Own folders only.** A command writes into a folder it creates, an empty folder, or a folder
   holding flowcore's marker file ``.flowcore-output.json`` (written on every successful run: the
   command, the flowcore version, the files it wrote, the time). Any flowcore command may write
   into a marked folder (``stability`` writes into the folder of ``attractors``, ``ood eval``
   beside a report of its own). A non-empty folder without a marker is refused with one line
   unless ``--force``.
2. **Never another's file.** A command replaces only the entries the marker lists (the ones
   flowcore wrote there); an entry of one of its names that flowcore did not write (a user's own
   ``summary.json``) is refused with one line, with or without ``--force``. ``--force`` only
   lets a command write into a non-empty folder flowcore did not write, beside its entries;
   every other entry (a user's ``my_notes.txt``) is never moved, changed or removed. For a
   folder that an older flowcore (or the Python API) wrote without a marker, ``--force`` also
   adopts the files its own index names: a bundle's ``flow.json``, a detector's
   ``checksums.json``.
3. **Checked first.** :meth:`OutputFolder.check` (called right after parsing) refuses an
   ``--out`` that is an existing file, a folder that cannot be written (tried with a real
   temporary file, so it also holds for root and read-only mounts) or one without the free
   space the command will need (:meth:`OutputFolder.check_space`, ``shutil.disk_usage``).
4. **Complete or absent.** :meth:`OutputFolder.staged` yields an empty staging folder (inside
   an existing output folder, else beside the one to create); on success its entries are moved
   into place by atomic renames and the marker is updated last; any failure (disk full included)
   rolls every rename back and removes the staging folder, the folders it created and
   everything in them, so the output folder is left exactly as it was.

:meth:`OutputFolder.staged` is flowcore's one staging primitive, for commands and the Python API
alike: ``Result.save``, ``FlowBundle.write``, ``OODDetector.save``, the adapters' export and
``flowcore.plots.ood.write_report`` stage through an ``OutputFolder(path)`` without a command
(no marker; the entries written replace those of the same names, every other entry is kept).
Writers only fill the folder it yields (``Result.write``, ``FlowBundle.write_into``).

Single-file outputs (``ood score --out scores.csv``) follow :class:`OutputFile`: a new file
is always allowed; an existing one is replaced only when the marker of its folder lists it
(flowcore wrote it) or with ``--force`` (the user named that very file); a folder where the
file goes is refused.

``flowcore export`` adds one rule: a folder already holding a FlowBundle (``flow.json``) is
replaced only with ``--force`` even when flowcore wrote it (a model is not a result one can
recompute); ``--force`` then replaces the bundle's files and its earlier external data, nothing
else. ``ood fit`` and ``export`` also remove the files their own previous run wrote there and
this one does not (``staged(prune=True)``), so a detector or bundle folder never mixes two runs.

Entries whose names start with ``.flowcore-`` (the marker, staging folders, the resume area
``.flowcore-partial`` of long runs) are flowcore's bookkeeping and never count as a folder's
content. A failed run keeps its resume area (so ``--resume`` can continue) and nothing else.

Exit codes: :class:`~flowcore.errors.OutputError` (refused; exit 3) and
:class:`~flowcore.errors.DiskFullError` (no space before or while writing; exit 4).
"""

from flowcore.outputs._marker import MARKER, NO_SPACE, Marker, read_marker
from flowcore.outputs._policy import OutputFile, OutputFolder

__all__ = ["MARKER", "NO_SPACE", "OutputFolder", "OutputFile", "Marker", "read_marker"]
