"""`lmp bench`: overhead, start-up, memory and scrape cost of LMP's collectors, printed as a table."""
