
sockudo:pong