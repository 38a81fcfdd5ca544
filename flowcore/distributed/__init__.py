"""Trajectories, attractor search and OOD scoring as Ray Data pipelines (``--ray``; issue 22)."""
