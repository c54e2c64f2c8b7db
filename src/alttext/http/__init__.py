"""Shared HTTP plumbing for every surface: auth dependencies, body reading and limits, the
route class, middleware (request ids, the request guard, the error boundary) and the uvicorn
options."""
