"""Data quality: whether a register page (pages, patterns) and a decoded value (gates) can be
trusted. Pure rules, no I/O.

May import: registers (the map it judges values by) and errors.
"""
