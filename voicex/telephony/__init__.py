"""Twilio: voice webhooks answered with TwiML, and bidirectional Media Streams carrying the call's audio."""
