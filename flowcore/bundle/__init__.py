"""The bundle layer: the FlowBundle format, its manifest, hashing and staging, and ONNX graph surgery.

Nothing here runs a graph; everything above (runtime, dynamics, analysis, the face) builds on it.
"""

from flowcore.bundle.flowbundle import FORMAT_VERSION, MANIFEST, FlowBundle

__all__ = ["FlowBundle", "MANIFEST", "FORMAT_VERSION"]
