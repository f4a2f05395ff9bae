"""The one version string (the wheel's, ``wan_nb.__version__``, the simulator's Server header)."""

__version__ = "0.1.0"
