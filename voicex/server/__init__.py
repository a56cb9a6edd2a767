"""The wiring on top: the app, the `voicex` command (serve, demo, admin), start-up and shut-down."""
