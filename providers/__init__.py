"""STT, LLM and TTS adapters behind the small interfaces of providers/base.py, plus the embedded offline stack."""
