"""What runs leave behind, written and read: metrics.json, each job's status.json, the jobs of a
sweep, sweep and study summaries, loss comparisons."""
