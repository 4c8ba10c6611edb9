"""The elastic MobileNetV3-style family: config, network, cost, memory and latency layers."""

from hwnas.families.mobilenet.config import MobileNetConfig, build_space
from hwnas.families.mobilenet.network import ElasticMobileNet
from hwnas.families.mobilenet.static import SubNet, resize

__all__ = ["ElasticMobileNet", "MobileNetConfig", "SubNet", "build_space", "resize"]
