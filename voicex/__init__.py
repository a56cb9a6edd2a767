"""Voicex: a real-time voice agent media server. This package is the server: wiring, HTTP, telephony, storage."""

__version__ = "0.1.0"
