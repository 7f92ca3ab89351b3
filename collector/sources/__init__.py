"""Readers, one per bundle file. Each takes lines or text and yields typed, frozen records.

Readers never raise on damaged input: a line they cannot read becomes a `Problem` record, so the
report can say what was damaged and what that costs the verdict.
"""
