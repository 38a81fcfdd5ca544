"""Old import path kept for the README's earlier examples: use :mod:`flowcore.dynamics.stability`."""

from flowcore.dynamics.stability import Stability, jacobians, predicted_steps, rate_check, stability

__all__ = ["Stability", "stability", "predicted_steps", "jacobians", "rate_check"]
