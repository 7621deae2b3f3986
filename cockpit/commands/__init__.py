"""One module per command; each imports what is heavy inside the function that needs it."""
