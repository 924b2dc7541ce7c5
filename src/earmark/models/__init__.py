"""The model zoo: one registry of every model the toolkit trains (see ``registry``)."""
