"""Foundations every floor uses: settings, logs, metrics, errors, ids, crypto, the Services container."""
