"""Who may act for whom (SPEC §8): keys, proofs of a key, permissions, limits.

Off unless `EXCHANGE_AUTH=on`. Then every request but the public reads
carries a proof: an HMAC-SHA256 signature, by a key's secret, of the
request's time, a nonce, its method, target and body (`proof`). A key's
secret is derived from the service's master secret (`secret`), so the
database holds no secret at all; keys, their permissions and the nonces
used are there (`store`, the only code touching those tables). The
`gate` checks a request's proof; `permissions` decides what the key may
do; `python -m app.auth` issues, lists and revokes keys (`cli`).
"""
