
sockudo:errorQO{"code":4009,"message":"Authentication error: Channel requires authentication"}