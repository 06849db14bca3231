"""The ``vllama`` command line."""
