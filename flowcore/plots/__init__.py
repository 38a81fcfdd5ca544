"""Figures (the face): field streamlines, basin and steps maps, decoded attractors, curves, OOD figures.

Every figure function returns ``(png_bytes, csv_text)``; analyses return data and never import
this package. matplotlib (the ``analysis`` extra) is imported inside the functions only.

Modules: ``_base`` (Figure class, PNG bytes, CSV cells, saving), ``field`` (field streamlines,
basin map, steps heatmap, plane projection), ``images`` (decoded attractors), ``lines``
(curves), ``ood`` (OOD figures and tables).
"""

from flowcore.plots._base import csv_cell, figure_class, png_bytes, save_figure
from flowcore.plots.field import basin_map, field_plot, project_to_plane, steps_heatmap
from flowcore.plots.images import decoded_grid
from flowcore.plots.lines import curves

__all__ = ["field_plot", "project_to_plane", "basin_map", "steps_heatmap", "decoded_grid", "curves",
           "save_figure", "figure_class", "png_bytes", "csv_cell"]
