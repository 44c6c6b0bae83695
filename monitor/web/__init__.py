"""`monitor serve`: the review site (overview, change feed, change detail, history, API, feed)."""
