"""Measurements of the running system: the latency benchmark (``bench``) and the long soak
(``soak``). They print and write numbers; no test asserts a speed."""
