"""Tables, engines, and the local PostgreSQL cluster."""
