"""``vllama bench``: load tests for any server that speaks Ollama's or OpenAI's API.

:mod:`.workload` says what to send, :mod:`.drivers` sends one request and times it,
:mod:`.runner` runs the concurrency levels, :mod:`.stats` summarizes them and
:mod:`.report` renders the table.
"""
