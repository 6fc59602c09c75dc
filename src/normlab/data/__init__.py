"""placeholder"""
from .pipeline import card, fetch, load, prepare  # noqa: F401
