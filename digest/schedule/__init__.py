"""Schedule: one APScheduler job per list, kept in the state database, run by `digest schedule`."""
