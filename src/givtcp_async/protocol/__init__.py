"""The GivEnergy wire protocol: frames (encode, decode, CRC), the resyncing byte stream, and
the ``.jsonl`` capture format. Sans-I/O: no sockets, no registers, no meaning of values.

May import: errors only.
"""
