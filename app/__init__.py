"""Exchange matching service: accounts, limit orders, price-time matching on PostgreSQL."""
