"""gtvision: an open reproduction of Sony AI's vision-based GT7 racing agent, with its own simulator."""
__version__ = "0.1.0"
