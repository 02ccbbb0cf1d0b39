"""The HTTP face of the exchange: thin Falcon resources over the transaction module."""
