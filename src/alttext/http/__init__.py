"""Shared HTTP plumbing for every surface: auth dependencies, body limits, middleware."""
