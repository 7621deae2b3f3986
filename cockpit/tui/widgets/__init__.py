"""Widgets, one package per screen area."""
