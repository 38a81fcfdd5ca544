"""The runtime layer: the latent map on ONNX Runtime (encode, decode, fused f = E∘D), providers, parity, doctor."""

from flowcore.runtime.fusion import fuse
from flowcore.runtime.latent_map import SUBNORMAL_RTOL, LatentMap, SubnormalWarning
from flowcore.runtime._sessions import default_session_options
from flowcore.runtime.providers import import_onnxruntime, resolve_providers

__all__ = ["LatentMap", "fuse", "resolve_providers", "import_onnxruntime", "default_session_options",
           "SubnormalWarning", "SUBNORMAL_RTOL"]
