"""The conversation engine: audio, VAD, turn-taking, and the STT → LLM → TTS call session.

Knows audio, time and provider interfaces (providers.base); knows nothing of HTTP, Twilio or MongoDB.
"""
