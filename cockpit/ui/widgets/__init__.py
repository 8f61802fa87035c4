"""Widgets: each shows state handed to it; none changes it."""
