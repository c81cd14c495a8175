"""Models: encoders, task heads and sharing architectures."""

from mtlkit.models.architectures import ARCHITECTURES, make_model
from mtlkit.models.base import MultiTaskModel, make_head
from mtlkit.models.encoders import ENCODERS, make_encoder
from mtlkit.models.shared_trunk import SharedTrunk

__all__ = [
    "ARCHITECTURES",
    "ENCODERS",
    "MultiTaskModel",
    "SharedTrunk",
    "make_encoder",
    "make_head",
    "make_model",
]
