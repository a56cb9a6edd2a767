"""Performance benchmarks: a real server process, simulated Twilio callers in other processes (docs/performance.md)."""
