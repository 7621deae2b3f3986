"""The app's screens: home, new run, a run, and the quit question."""
