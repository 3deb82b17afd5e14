"""Pure HTTP: the rules and values of the protocol, with no I/O and no trio.

Everything here takes and returns plain values (bytes, numbers, h11 events), so it is tested
with bytes alone; tests/test_layers.py proves that importing it loads no trio.
"""
