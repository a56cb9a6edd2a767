"""The declarative catalogs of config/ (plans, provider types and models, turn-taking) and the global providers."""
