
sockudo:signin_success<:{"user_data":"{\"id\":\"12345\",\"watchlist\":[\"777\"]}"}