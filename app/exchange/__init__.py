"""The domain: commands, their results, and the transactions that carry them out."""
