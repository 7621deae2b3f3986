"""The run screen's panels."""
