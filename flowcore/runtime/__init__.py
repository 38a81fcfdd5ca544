"""The runtime layer: the latent map on ONNX Runtime (encode, decode, fused f = E∘D), providers, doctor."""

from flowcore.runtime.fusion import fuse
from flowcore.runtime.latent_map import LatentMap, import_onnxruntime, resolve_providers

__all__ = ["LatentMap", "fuse", "resolve_providers", "import_onnxruntime"]
