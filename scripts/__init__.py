"""Operator and test tooling: the simulated Twilio caller (``scripts.twilio_sim``), benchmarks, set-up helpers."""
