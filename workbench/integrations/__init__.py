"""Adapters that bring a foreign training loop onto the session's bus (Lightning; plain loops use ``wb.watch``)."""
