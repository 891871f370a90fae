"""The simulated dongle and plant behind ``givtcp-async simulate`` and the tests: a register
store, a physical plant with ground truth, wire faults, and a TCP server speaking the protocol.

May import: protocol and quality (shared codecs); never the client side (connection,
coordinator, sinks).
"""
