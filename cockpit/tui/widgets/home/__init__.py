"""The home screen's widgets."""
