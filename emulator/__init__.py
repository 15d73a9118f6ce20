"""Emulator of the Quectel EC200x/EC800x LTE modules (EC200M-CN, EC200N-CN, EC800M-CN, EC800N-CN)."""

__version__ = "0.1.0"
__all__ = ["Emulator"]


def __getattr__(name: str):
    """``from ecemu import Emulator``, without loading the asyncio shell for every submodule."""
    if name == "Emulator":
        from .api import Emulator

        return Emulator
    raise AttributeError(f"module 'ecemu' has no attribute {name!r}")
