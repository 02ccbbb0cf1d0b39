"""Live market data (SPEC §10): one source of changes per worker, fanned out to its streams.

`feed.MarketFeed` polls the database once per interval for every symbol its
streams follow, whatever their number, and hands each stream's
`subscription.Subscription` the events it is owed; the web tier writes them
(app/web/stream.py).
"""
