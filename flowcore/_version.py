"""The version, once (read by setuptools and ``flowcore --version``)."""

__version__ = "0.1.0"
