"""Figures (the face): field streamlines, basin and steps maps, decoded attractors, curves, OOD figures.

Every figure function returns ``(png_bytes, csv_text)``; analyses return data and never import
this package. matplotlib (the ``analysis`` extra) is imported inside the functions only.
"""

from flowcore.plots._figures import (
    basin_map,
    csv_cell,
    curves,
    decoded_grid,
    field_plot,
    figure_class,
    png_bytes,
    project_to_plane,
    save_figure,
    steps_heatmap,
)

__all__ = ["field_plot", "project_to_plane", "basin_map", "steps_heatmap", "decoded_grid", "curves",
           "save_figure", "figure_class", "png_bytes", "csv_cell"]
