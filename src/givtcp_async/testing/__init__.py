"""Helpers shipped for testing against this package (wire fuzzing).

May import: protocol and errors.
"""
