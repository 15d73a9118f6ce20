"""Emulator of the Quectel EC200x/EC800x LTE modules (EC200M-CN, EC200N-CN, EC800M-CN, EC800N-CN)."""

__version__ = "0.1.0"
