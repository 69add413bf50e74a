"""Triggers for deferrable waiting: they only poll (never start anything) in the triggerer's event loop."""
