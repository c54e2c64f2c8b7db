"""Use cases: one alt-text generation for an authenticated caller, and its request models."""
