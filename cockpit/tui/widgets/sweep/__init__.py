"""The sweep screen's widgets."""
