"""Idempotent requests (SPEC §9): a key names a request, so that a client may send it again.

keys.py reads the key (the `Idempotency-Key` header, or the `exch-idempotency`
prefix of the body) and fingerprints the document; claims.py holds what an
attempt knows of its claim on the key; requests.py answers a request once,
whatever the number of repeats; purge.py forgets keys once they are old enough.
The transaction module keeps the claims and each child's record in the
database, the record in the child's own transaction.
"""
