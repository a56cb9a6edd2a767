"""Request plumbing under the handlers: middleware, CORS, rate limits, authentication, presenters, JSON I/O."""
