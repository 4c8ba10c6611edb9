"""The NAS-Bench-201 network over its cell space (``NB201SuperNet``)."""

from hwnas.families.nb201.config import NB201Config
from hwnas.families.nb201.network import NB201Network, NB201SuperNet

__all__ = ["NB201Config", "NB201Network", "NB201SuperNet"]
