
sockudo:rewind_completeordersrp{"historical_count":10,"live_count":0,"complete":true,"truncated_by_retention":false,"truncated_by_limit":false}