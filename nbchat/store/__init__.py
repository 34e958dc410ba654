"""The store on the user's machine: every exchange kept in SQLite, and what is built on it.

``db`` (the database), ``log`` (reading it back), ``cache`` and ``replay`` (answering without
sending), ``prices`` and ``budget`` (what replies cost); ``exchange`` is the one entry point.
"""
