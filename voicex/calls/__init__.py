"""A call's life outside any wire protocol: admission, the agent-status rule, building the session, the janitor."""
