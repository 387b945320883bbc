"""One JSON schema per stream, named after it."""
