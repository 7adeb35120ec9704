
sockudo:cache_misscache-prices
{}