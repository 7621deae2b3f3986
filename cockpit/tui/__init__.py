"""The interactive cockpit: a Textual app over the run dirs (home, new run, a run live or finished).

Nothing here is imported by `cockpit --help`; the commands import `cockpit.tui.app` when they run.
Modules without Textual (series, feed, runs, new_run) hold the domain code; screens route.
"""
