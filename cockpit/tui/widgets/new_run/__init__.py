"""The new-run form's widgets."""
