"""gtvision: an open reproduction of Sony AI's vision-based GT7 racing agent, with its own simulator."""
from . import env  # noqa: F401  (registers the gymnasium ids gtvision/Tokyo-v0, Spa-v0, Sarthe-v0)

__version__ = "0.1.0"
