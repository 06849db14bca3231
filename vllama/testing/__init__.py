"""The test kit: a deterministic echo backend and the backend conformance suite."""
